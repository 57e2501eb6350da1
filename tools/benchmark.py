"""Parameters, FLOPs, inference latency and training speed of a config's model or a checkpoint:
python tools/benchmark.py config=NAME|checkpoint=PATH [key=value ...]"""
import sys

from detframe.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
