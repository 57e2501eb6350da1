"""Check a training config's datasets:
python tools/check_dataset.py config=NAME [level=full|quick] [splits=train,val] [key=value ...]

Prints per split: images, boxes per class, images without boxes, ignored boxes, quirks fixed on
reading, missing/unreadable files, duplicates, unknown class names (errors) and classes without
instances (warnings). Exit status 1 when there are errors.
"""
import sys

from detframe.cli.dataset_tools import check_main

if __name__ == "__main__":
    sys.exit(check_main())
