"""Reports of an evaluation: tables (console, Markdown, JSON), PR-curve data, TensorBoard, files.

Files are written atomically (a temporary file renamed into place), so an interrupted run never
leaves a half-written report next to a good checkpoint.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Table:
    """A small table: `rows[i][j]` is the value of column `columns[j]`; floats print with 3 decimals."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""

    def _cells(self) -> list[list[str]]:
        return [[_cell(v) for v in row] for row in self.rows]

    def to_text(self) -> str:
        cells = self._cells()
        widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(self.columns)]

        def line(values: list[str]) -> str:
            return "  ".join(v.ljust(w) if j == 0 else v.rjust(w)
                             for j, (v, w) in enumerate(zip(values, widths)))

        out = [self.title, line(self.columns), line(["-" * w for w in widths]), *(line(r) for r in cells)]
        return "\n".join(out + ([self.note] if self.note else []))

    def to_markdown(self) -> str:
        head = f"| {' | '.join(self.columns)} |\n|{'|'.join(['---'] + ['---:'] * (len(self.columns) - 1))}|\n"
        body = "".join(f"| {' | '.join(r)} |\n" for r in self._cells())
        return f"### {self.title}\n\n{head}{body}" + (f"\n{self.note}\n" if self.note else "")

    def to_records(self) -> list[dict[str, Any]]:
        """Rows as JSON-ready dicts; undefined values (NaN) become null."""
        return [{c: _json_value(v) for c, v in zip(self.columns, row)} for row in self.rows]


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "n/a" if not math.isfinite(value) or value < 0 else f"{value:.3f}"
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) or value < 0 else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass
class RankedDetections:
    """One class's detections ranked by score, with their outcome: what PR curves are drawn from."""

    name: str
    scores: np.ndarray  # float64 [n], descending
    tp: np.ndarray  # bool [n]
    fp: np.ndarray  # bool [n] (a detection can be neither: matched to an ignored box)
    num_pos: int  # ground-truth boxes that count (not ignored)

    def curve(self, monotone: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(recall [n], precision [n]) after each ranked detection; with `monotone`, the precision
        envelope (the highest precision at this recall or beyond), whose area is VOC12's AP."""
        tp, fp = np.cumsum(self.tp), np.cumsum(self.fp)
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        if monotone and len(precision):
            precision = np.maximum.accumulate(precision[::-1])[::-1]
        return tp / max(self.num_pos, 1), precision

    def counts_at_thresholds(self, num_thresholds: int = 101) -> dict[str, np.ndarray]:
        """TensorBoard's raw PR-curve data: counts of detections with score >= t for t = 0 .. 1."""
        thresholds = np.linspace(0.0, 1.0, num_thresholds)
        kept = np.searchsorted(-self.scores, -thresholds, side="right")  # detections with score >= t
        tp = np.r_[0, np.cumsum(self.tp)][kept].astype(float)
        fp = np.r_[0, np.cumsum(self.fp)][kept].astype(float)
        return {
            "true_positive_counts": tp, "false_positive_counts": fp,
            "true_negative_counts": np.zeros(num_thresholds), "false_negative_counts": self.num_pos - tp,
            "precision": tp / np.maximum(tp + fp, 1e-7),  # TensorBoard's own convention: 0 with no detections
            "recall": tp / max(self.num_pos, 1),
        }


def add_pr_curves(writer: Any, tag: str, ranked: list[RankedDetections], step: int) -> None:
    """One TensorBoard PR curve per class (classes without ground truth are skipped)."""
    for r in ranked:
        if r.num_pos > 0:
            writer.add_pr_curve_raw(f"{tag}/{r.name}", **r.counts_at_thresholds(), global_step=step,
                                    num_thresholds=101)


def atomic_write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    return _atomic(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def atomic_save_figure(figure: Any, path: Path, dpi: int = 110, tight: bool = True) -> Path:
    """Save a matplotlib Figure as PNG atomically (`tight`: crop to the drawn content, one more draw)."""
    return _atomic(path, lambda f: figure.savefig(f, format="png", dpi=dpi,
                                                  bbox_inches="tight" if tight else None))


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def tensorboard_writer(runner: Any) -> Any:
    """The SummaryWriter of the runner's logging hook (LoggerHook keeps it as `writer`), or None."""
    for hook in getattr(runner, "hooks", {}).values():
        if getattr(hook, "writer", None) is not None:
            return hook.writer
    return None
