"""`python -m detframe <tool> [args]`: train, eval, check-dataset, browse-dataset, anchors."""
import sys

from .cli import TOOLS, tool
from .errors import choices_text, did_you_mean


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(f"usage: python -m detframe <tool> [args]\ntools: {', '.join(TOOLS)}\n"
              "each takes the arguments of tools/<tool>.py (e.g. python -m detframe train --cfg job)")
        return 0 if len(sys.argv) >= 2 else 2
    name = sys.argv[1].replace("_", "-")
    if name not in TOOLS:
        print(f"error: unknown tool '{sys.argv[1]}'.{did_you_mean(name, TOOLS)} Tools: {choices_text(TOOLS)}",
              file=sys.stderr)
        return 2
    sys.argv = [f"detframe {name}", *sys.argv[2:]]
    result = tool(name)()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
