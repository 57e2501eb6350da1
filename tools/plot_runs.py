"""Training curves of one run, or of several overlaid:
python tools/plot_runs.py RUN [RUN ...] [out=FOLDER]"""
import sys

from detframe.cli.plot_runs import main

if __name__ == "__main__":
    sys.exit(main())
