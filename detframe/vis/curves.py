"""Training curves from a run's `scalars.jsonl`: loss terms, learning rate and gradient norm over
iterations, every validation metric over epochs, as grids of small panels (ultralytics' results.png is
the model), one run or several overlaid.

`scalars.jsonl` (written by engine/logging_hooks.py's LoggerHook) holds one JSON object per line: a
logging step (`{"iter": 20, "epoch": 1, "train/loss_cls": 0.8, "train/lr": 0.01, ...}`) or an
evaluation (`{"iter": 40, "epoch": 2, "val/coco/AP": 0.31, ...}`).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

SCALARS_FILE = "scalars.jsonl"
# Panels per figure beyond which the rest are left out (a grid past this is unreadable).
MAX_PANELS = 40
COLUMNS = 5
Series = dict[str, tuple[np.ndarray, np.ndarray]]  # key -> (x, y)


def read_scalars(path: Path) -> list[dict[str, float]]:
    """The records of a `scalars.jsonl`, in order. A line that is not a JSON object with an `iter` (the
    half-written last line of a killed run) is skipped. When a record's `iter` goes back (a resumed run
    whose file was not cut), it supersedes the earlier records of its kind from that iteration on."""
    records: list[dict[str, float]] = []
    for line in Path(path).read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or not isinstance(record.get("iter"), int):
            continue
        kind = _kind(record)
        records = [r for r in records if _kind(r) != kind or r["iter"] < record["iter"]]
        records.append(record)
    return records


def _kind(record: Mapping[str, object]) -> str:
    return "val" if any(k.startswith("val/") for k in record) else "train"


def series(records: Sequence[Mapping[str, float]], prefix: str, x_key: str) -> Series:
    """Every key starting with `prefix` as (x, y) arrays, x from `x_key` (`iter` or `epoch`); keys in the
    order they first appear, loss terms first for the training keys."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for record in records:
        for key, value in record.items():
            if key.startswith(prefix) and isinstance(value, (int, float)):
                xs, ys = out.setdefault(key, ([], []))
                xs.append(record[x_key])
                ys.append(value)
    keys = sorted(out, key=lambda k: (not k.startswith(f"{prefix}loss"), list(out).index(k)))
    return {k: (np.asarray(out[k][0], float), np.asarray(out[k][1], float)) for k in keys}


def smooth(y: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """A Gaussian moving average over `sigma` points, normalised at the ends (no pull towards 0)."""
    if len(y) < 3:
        return y
    radius = min(int(3 * sigma), (len(y) - 1) // 2)  # np.convolve's "same" is as long as the longer input
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    finite = np.isfinite(y)
    values = np.convolve(np.where(finite, y, 0.0), kernel, mode="same")
    weights = np.convolve(finite.astype(float), kernel, mode="same")
    return np.divide(values, weights, out=np.full_like(values, np.nan), where=weights > 0)


def curves_figure(runs: Mapping[str, Series], title: str, x_label: str) -> Figure | None:
    """One panel per key (the union over runs), each run's raw curve thin and its smoothed curve bold;
    the legend names the runs when there are several. None when no run has any key."""
    keys = list(dict.fromkeys(k for run in runs.values() for k in run))[:MAX_PANELS]
    if not keys:
        return None
    cols = min(COLUMNS, len(keys))
    rows = math.ceil(len(keys) / cols)
    legend_rows = math.ceil(len(runs) / 4) if len(runs) > 1 else 0
    legend_height = 0.25 * legend_rows + 0.1 * bool(legend_rows)  # inches
    height = 2.5 * rows + 0.5 + legend_height
    fig = Figure(figsize=(3.2 * cols, height))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for ax, key in zip(axes, keys):
        for run, colour in zip(runs.values(), colours):
            if key in run:
                _draw(ax, *run[key], colour, smoothed=not key.rsplit("/", 1)[-1].startswith("lr"))
        ax.set_title(key.split("/", 1)[-1], fontsize=9)
        ax.set_xlabel(x_label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    if legend_rows:
        handles = [Line2D([], [], color=c, linewidth=1.6) for c in colours]
        fig.legend(handles, list(runs), loc="lower center", ncol=min(len(runs), 4), fontsize=8,
                   frameon=False)
    fig.suptitle(title)
    # fixed margins: tight_layout would draw the figure once more (seconds on a busy CPU, every run)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=(0.55 + legend_height) / height, top=1 - 0.6 / height,
                        wspace=0.3, hspace=0.55 * 2.5 / height * rows)
    return fig


def _draw(ax, x: np.ndarray, y: np.ndarray, colour: str, smoothed: bool) -> None:
    """The raw curve thin and pale, the smoothed one bold; under 10 points, or for a curve that is not
    noisy (the learning rate), only the raw one, bold (smoothing a few evaluations would hide them)."""
    if len(x) < 10 or not smoothed:
        ax.plot(x, y, color=colour, linewidth=1.6, marker="." if len(x) < 30 else None)
        return
    ax.plot(x, y, color=colour, linewidth=0.8, alpha=0.4)
    ax.plot(x, smooth(y), color=colour, linewidth=1.6)


def run_figures(runs: Mapping[str, Sequence[Mapping[str, float]]]) -> dict[str, Figure]:
    """`train.png` (every `train/` key over iterations) and `val.png` (every `val/` metric over epochs)
    for the records of one run or several (label -> records), those with something to draw."""
    figures = {
        "train.png": curves_figure({k: series(r, "train/", "iter") for k, r in runs.items()},
                                   "training", "iteration"),
        "val.png": curves_figure({k: series(r, "val/", "epoch") for k, r in runs.items()},
                                 "validation", "epoch"),
    }
    return {name: fig for name, fig in figures.items() if fig is not None}
