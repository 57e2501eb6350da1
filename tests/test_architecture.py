"""The import structure ARCHITECTURE.md describes: arrows point one way between detframe's packages,
and only detframe/dist.py talks to torch.distributed."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "detframe"


def imports(path: Path) -> set[str]:
    """The detframe modules a file imports (relative imports resolved), as dotted names."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            else:
                found.add(node.module or "")
    return {name for name in found if name.startswith("detframe")}


def unit(module: str) -> str:
    """detframe.engine.runner -> engine; detframe.dist -> dist."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = unit(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if source in ("__main__", "__init__", ""):
            continue
        edges.setdefault(source, set()).update(u for u in map(unit, imports(path)) if u and u != source)
    return edges


def test_arrows_point_one_way():
    edges = graph()
    for low in ("data", "models", "evaluation"):
        assert not edges.get(low, set()) & {"engine", "cli"}, (
            f"{low} imports {edges[low] & {'engine', 'cli'}}")
    assert not edges["config"] & {"data", "models", "engine", "evaluation", "cli", "vis"}, edges["config"]
    assert "cli" not in set().union(*(v for k, v in edges.items() if k != "cli"))  # nothing imports the tools

    def visit(node: str, path: list[str]) -> None:
        assert node not in path, f"import cycle between packages: {' -> '.join([*path, node])}"
        for nxt in edges.get(node, ()):
            visit(nxt, [*path, node])

    for start in edges:
        visit(start, [])


def uses_torch_distributed(path: Path) -> bool:
    """Whether a file imports torch.distributed or calls `torch.distributed.<anything>` (code, not text)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name.startswith("torch.distributed") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch.distributed"):
            return True
        if (isinstance(node, ast.Attribute) and node.attr == "distributed"
                and isinstance(node.value, ast.Name) and node.value.id == "torch"):
            return True
    return False


def test_only_dist_calls_torch_distributed():
    offenders = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
                 if p != PACKAGE / "dist.py" and uses_torch_distributed(p)]
    assert offenders == []
