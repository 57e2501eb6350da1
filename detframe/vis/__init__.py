"""Pictures: boxes drawn on images (draw.py) and evaluation plots (plots.py, matplotlib without pyplot)."""
from .draw import class_colours, draw_detections, draw_sample, draw_val_images, grid, write_png
from .plots import confusion_matrix_figure, figure_to_array, pr_curves_figure, pr_grid_figure

__all__ = [
    "class_colours", "confusion_matrix_figure", "draw_detections", "draw_sample", "draw_val_images",
    "figure_to_array", "grid", "pr_curves_figure", "pr_grid_figure", "write_png",
]
