"""`detframe-plot-runs` / `python tools/plot_runs.py`: training curves of finished (or running) runs from
their `scalars.jsonl`: one run's plots, or several runs overlaid (a sweep's folders).

    python tools/plot_runs.py RUN [RUN ...] [out=FOLDER]
    python tools/plot_runs.py outputs/<experiment>/multirun_<time>      # every run of a sweep

Runs are labelled by the overrides that differ between them (their `.hydra/overrides.yaml`), or by
their folder names. The figures go to `<RUN>/plots/` for one run, `<common parent>/plots/` for several.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import yaml

from ..errors import ConfigError
from ..rules import Folder
from ..vis.curves import SCALARS_FILE
from .common import Arg, parse_args, run_tool

PLOT_ARGS = {
    "out": Arg(None, "the folder for train.png and val.png (default: <RUN>/plots, or the runs' common "
                     "parent/plots)", rule=Folder()),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(run_plot_runs, argv)


def run_plot_runs(args: Sequence[str]) -> list[Path]:
    """Draw the runs the command line names; returns the files written."""
    from ..engine.logging_hooks import write_run_plots

    own, rest = parse_args(args, PLOT_ARGS, "plot_runs")
    for arg in rest:
        if "=" in arg:
            raise ConfigError(f"{arg}: plot_runs takes run folders and out=FOLDER, nothing else")
    if not rest:
        raise ConfigError("name at least one run folder: plot_runs RUN [RUN ...] [out=FOLDER]")
    runs = [run for a in rest for run in _runs_in(Path(a).expanduser())]
    out = Path(own["out"]).expanduser() if "out" in own else _default_out(runs)
    labels = run_labels(runs)
    paths = write_run_plots(out, {label: run / SCALARS_FILE for label, run in zip(labels, runs)})
    print(f"{len(runs)} run{'s' if len(runs) > 1 else ''} drawn: {', '.join(map(str, paths))}")
    return paths


def _runs_in(path: Path) -> list[Path]:
    """`path` itself when it holds a scalars.jsonl; else, for a sweep's folder, its subfolders that do
    (in numeric order: 0, 1, ..., 10)."""
    if (path / SCALARS_FILE).is_file():
        return [path]
    runs = sorted((p for p in path.glob(f"*/{SCALARS_FILE}")), key=lambda p: _natural(p.parent.name))
    if not runs:
        raise ConfigError(f"{path}: no {SCALARS_FILE} (not a detframe training run folder, nor a sweep's "
                          "folder of runs?)")
    return [p.parent for p in runs]


def _natural(name: str) -> tuple:
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _default_out(runs: list[Path]) -> Path:
    if len(runs) == 1:
        return runs[0] / "plots"
    return Path(os.path.commonpath([r.resolve() for r in runs])) / "plots"


def run_labels(runs: list[Path]) -> list[str]:
    """The overrides each run has and not all of the others (from `.hydra/overrides.yaml`), when every
    run has that file and they differ; otherwise the folder names (made unique with their parents)."""
    overrides = [_overrides(run) for run in runs]
    if len(runs) > 1 and all(o is not None for o in overrides):
        common = set.intersection(*(set(o) for o in overrides))
        labels = [" ".join(x for x in o if x not in common) for o in overrides]
        if all(labels) and len(set(labels)) == len(labels):
            return labels
    names = [run.resolve().name for run in runs]
    if len(set(names)) < len(names):
        names = [f"{run.resolve().parent.name}/{run.resolve().name}" for run in runs]
    return names


def _overrides(run: Path) -> list[str] | None:
    path = run / ".hydra" / "overrides.yaml"
    try:
        value = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return [str(v) for v in value] if isinstance(value, list) else None
