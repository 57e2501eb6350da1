"""Evaluation plots: precision-recall curves and confusion matrices, as matplotlib Figures.

We build `matplotlib.figure.Figure` objects directly (no pyplot): no global state, no GUI backend,
safe in worker threads and on headless machines. Saving is the caller's job (report.atomic_save_figure).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

# Legends and per-cell numbers stop being readable past these sizes.
MAX_LEGEND_CLASSES = 20
MAX_ANNOTATED_CLASSES = 30


def pr_curves_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], ap: dict[str, float], title: str,
                     mean_curve: tuple[np.ndarray, np.ndarray] | None = None, ap_name: str = "AP") -> Figure:
    """All classes' precision-recall curves in one plot.

    Args:
        curves: class name -> (recall [n], precision [n]), recall ascending.
        ap: class name -> its AP (shown in the legend; NaN for classes without ground truth).
        title: the figure title (evaluator and setting, e.g. "coco: IoU=0.50").
        mean_curve: optional (recall, precision) of the class mean, drawn bold.
    """
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    legend = len(curves) <= MAX_LEGEND_CLASSES
    for name, (recall, precision) in curves.items():
        label = f"{name} {ap_name} {ap.get(name, float('nan')):.3f}" if legend else None
        ax.plot(recall, precision, linewidth=1.2 if legend else 0.6, alpha=0.9 if legend else 0.5,
                label=label)
    if mean_curve is not None:
        valid = [v for v in ap.values() if np.isfinite(v)]
        mean = float(np.mean(valid)) if valid else float("nan")
        ax.plot(*mean_curve, color="black", linewidth=2.5, label=f"all classes m{ap_name} {mean:.3f}")
    _pr_axes(ax, title)
    if legend or mean_curve is not None:
        ax.legend(loc="lower left", fontsize="small", framealpha=0.8)
    return fig


def pr_grid_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], ap: dict[str, float], title: str,
                   ap_name: str = "AP") -> Figure:
    """One small panel per class (recall 0..1 across, precision 0..1 up), its AP above it.

    The panels are drawn into a single Axes at offsets rather than as one Axes each: 80 classes render
    in about a second instead of ten, which matters when every evaluation writes them.
    """
    from matplotlib.patches import Rectangle

    n = max(len(curves), 1)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(max(1.9 * cols, 4.0), 1.7 * rows + 0.6))
    ax = fig.add_axes((0.01, 0.01, 0.98, 1 - 0.7 / (1.7 * rows + 0.6)))
    step_x, step_y = 1.15, 1.3
    for i, (name, (recall, precision)) in enumerate(curves.items()):
        x0, y0 = (i % cols) * step_x, (rows - 1 - i // cols) * step_y
        ax.add_patch(Rectangle((x0, y0), 1, 1, fill=False, linewidth=0.6, edgecolor="0.5"))
        ax.plot([x0, x0 + 1, np.nan, x0 + 0.5, x0 + 0.5], [y0 + 0.5, y0 + 0.5, np.nan, y0, y0 + 1],
                linewidth=0.3, color="0.85")
        ax.fill_between(x0 + recall, y0, y0 + precision, alpha=0.15, color="C0", linewidth=0)
        ax.plot(x0 + recall, y0 + precision, linewidth=1, color="C0")
        ax.text(x0 + 0.5, y0 + 1.04, f"{name}  {ap_name} {ap.get(name, float('nan')):.3f}", ha="center",
                va="bottom", fontsize=7, clip_on=False)
    ax.set_xlim(-0.05, cols * step_x - 0.1)
    ax.set_ylim(-0.05, rows * step_y - 0.1)
    ax.axis("off")
    fig.suptitle(f"{title}\nper class: recall 0-1 across, precision 0-1 up", fontsize=9)
    return fig


def _pr_axes(ax, title: str) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)


def confusion_matrix_figure(matrix: np.ndarray, names: Sequence[str], title: str, normalize: bool) -> Figure:
    """A (C+1) x (C+1) confusion matrix: rows the true class, columns the predicted class, the last of
    each the background (a missed object in the last column, a false detection in the last row).

    Args:
        matrix: int [C+1, C+1] counts.
        names: the C class names.
        normalize: show each row as fractions of its total (per true class), with the counts in the cells.
    """
    labels = [*names, "background"]
    n = len(labels)
    counts = matrix.astype(float)
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    size = min(4 + 0.45 * n, 24)
    fig = Figure(figsize=(size, size * 0.9))
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else max(values.max(), 1))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(n)
    font = max(4, min(9, 200 // n))
    ax.set_xticks(ticks, labels, rotation=90, fontsize=font)
    ax.set_yticks(ticks, labels, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= MAX_ANNOTATED_CLASSES:
        for i, j in zip(*np.nonzero(counts)):
            text = f"{values[i, j]:.2f}\n({int(counts[i, j])})" if normalize else str(int(counts[i, j]))
            ax.text(j, i, text, ha="center", va="center", fontsize=font - 1,
                    color="white" if values[i, j] > 0.6 * (1 if normalize else values.max()) else "black")
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """Render a Figure to uint8 [H, W, 3] RGB (for TensorBoard's add_image)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
