"""Plots of evaluation results (matplotlib, no pyplot)."""
from .plots import confusion_matrix_figure, figure_to_array, pr_grid_figure, pr_curves_figure

__all__ = ["confusion_matrix_figure", "figure_to_array", "pr_grid_figure", "pr_curves_figure"]
