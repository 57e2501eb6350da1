"""Evaluate a checkpoint with the config it was trained with: python tools/eval.py checkpoint=PATH [key=value ...]"""
from detframe.cli import eval_main

if __name__ == "__main__":
    eval_main()
