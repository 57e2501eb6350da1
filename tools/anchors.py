"""Anchor shapes for a dataset by IoU k-means:
python tools/anchors.py config=NAME [k=9] [split=train] [key=value ...]"""
import sys

from detframe.cli.anchors import main

if __name__ == "__main__":
    sys.exit(main())
