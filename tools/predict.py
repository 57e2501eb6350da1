"""Run a trained model on images, a folder, a glob, a list of files or a video:
python tools/predict.py checkpoint=PATH source=PATH [key=value ...]"""
import sys

from detframe.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
