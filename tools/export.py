"""Export a checkpoint as ONNX (NMS in the graph or not) or TorchScript:
python tools/export.py checkpoint=PATH [format=onnx|torchscript] [out=FILE] [nms=true|false] [key=value]"""
import sys

from detframe.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
