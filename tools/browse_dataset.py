"""Look at training images after the full pipeline:
python tools/browse_dataset.py config=NAME [pipeline=...] [n=16] [split=train] [out=browse] [seed=0]

Writes PNGs with the boxes and class names drawn (and grid.png with all of them), and prints the
per-class box counts of those images.
"""
import sys

from detframe.cli.dataset_tools import browse_main

if __name__ == "__main__":
    sys.exit(browse_main())
