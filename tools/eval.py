"""Evaluate a checkpoint with the config it was trained with:
python tools/eval.py checkpoint=PATH [key=value ...]"""
import sys

from detframe.cli.eval import main

if __name__ == "__main__":
    sys.exit(main())
