"""Train a detector: python tools/train.py [config=NAME|path.yaml] [group=option] [key=value] ...

Print the composed config without training: python tools/train.py --cfg job
"""
from detframe.cli import train_main

if __name__ == "__main__":
    train_main()
