"""Train a detector: python tools/train.py [config=NAME|path.yaml] [group=option] [key=value] ...

Print the composed config without training: python tools/train.py --cfg job
"""
import sys

from detframe.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
