"""The command-line tools, each a `main(argv=None)`: thin layers over the config API (detframe.config),
the engine and the data, evaluation and model packages. Nothing else in detframe imports them.

    tool              module                      console script            also
    train             cli/train.py                detframe-train            python tools/train.py
    eval              cli/eval.py                 detframe-eval             python tools/eval.py
    check-dataset     cli/dataset_tools.py        detframe-check-dataset    python tools/check_dataset.py
    browse-dataset    cli/dataset_tools.py        detframe-browse-dataset   python tools/browse_dataset.py
    anchors           cli/anchors.py              detframe-anchors          python tools/anchors.py
    convert           cli/convert.py              detframe-convert          python tools/convert.py
    export            cli/export.py               detframe-export           python tools/export.py
    predict           cli/predict.py              detframe-predict          python tools/predict.py
    benchmark         cli/benchmark.py            detframe-benchmark        python tools/benchmark.py
    plot-runs         cli/plot_runs.py            detframe-plot-runs        python tools/plot_runs.py

`python -m detframe <tool> [args]` runs any of them.
"""
from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

TOOLS = {
    "train": ("detframe.cli.train", "main"),
    "eval": ("detframe.cli.eval", "main"),
    "check-dataset": ("detframe.cli.dataset_tools", "check_main"),
    "browse-dataset": ("detframe.cli.dataset_tools", "browse_main"),
    "anchors": ("detframe.cli.anchors", "main"),
    "convert": ("detframe.cli.convert", "main"),
    "export": ("detframe.cli.export", "main"),
    "predict": ("detframe.cli.predict", "main"),
    "benchmark": ("detframe.cli.benchmark", "main"),
    "plot-runs": ("detframe.cli.plot_runs", "main"),
}


def tool(name: str) -> Callable[..., Any]:
    """The `main` function of the tool called `name` (imported on demand: each tool imports only what it
    needs)."""
    module, function = TOOLS[name]
    return getattr(import_module(module), function)
