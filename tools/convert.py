"""A torchvision detector's COCO weights as a detframe checkpoint:
python tools/convert.py arch=retinanet_resnet50_fpn weights=FILE.pth|DEFAULT out=retinanet_coco.pt
"""
import sys

from detframe.cli.convert import main

if __name__ == "__main__":
    sys.exit(main())
