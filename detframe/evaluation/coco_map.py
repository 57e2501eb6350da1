"""COCO box mAP: the 12 numbers of pycocotools' COCOeval, from one of three backends, and COCO mask
mAP (`segm`) next to it when the model predicts instance masks.

- `detframe` (default): coco_eval.py, pycocotools' algorithm vectorised with numpy. Bit-identical to
  pycocotools (the tests compare every entry of the precision/recall arrays) and ~30x faster.
- `pycocotools`: the reference itself.
- `faster_coco_eval`: the C++ package (`pip install "detframe[fast]"`). It rounds a few values
  differently in the last bit, so "agrees" means within AGREEMENT_TOLERANCE of pycocotools on a
  built-in case, checked once per process; where it does not agree, pycocotools is used instead.

Mask AP is pycocotools' COCOeval(iouType="segm") whatever the backend (the vectorised backend computes
box IoUs only), on the predictions' RLEs against the dataset's `segmentation`s. As in detectron2, the
results it reads have no `bbox`, so that pycocotools takes each detection's area from its mask (the
area ranges small/medium/large of mask AP are mask areas). Its 12 numbers are `<prefix>/segm_AP`, ...
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from ..errors import ConfigError, UserError
from ..registry import EVALUATORS
from ..rules import Each, OneOf, Range
from .base import DetectionEvaluator
from .coco_eval import (
    AREA_LABELS,
    COCO_METRICS,
    RECALL_THRESHOLDS,
    CocoEvalResult,
    coco_evaluate,
    summarize,
    summary_text,
)
from .ground_truth import GroundTruth
from .predictions import Predictions, to_coco_results
from .report import (
    RankedDetections,
    Table,
    add_pr_curves,
    atomic_save_figure,
    atomic_write_json,
    atomic_write_text,
)

log = logging.getLogger(__name__)

BACKENDS = ("detframe", "pycocotools", "faster_coco_eval")
Backend = Annotated[str, OneOf(*BACKENDS)]
MaxDets = Annotated[tuple[int, int, int], Each(Range(1, integer=True), length=3)]
AGREEMENT_TOLERANCE = 1e-12  # far below the 3 printed decimals; faster-coco-eval 1.8 differs by ~1e-16
_agreement: dict[str, float] = {}  # backend -> max difference found by the self-check (once per process)


@EVALUATORS.register()
class CocoEvaluator(DetectionEvaluator):
    """The 12 COCO box metrics (`coco/AP`, `coco/AP50`, ..., `coco/ARl`), a per-class table and PR curves.

    Args:
        dataset: the evaluated dataset (`to_coco()`, `category_ids`).
        prefix: metric name prefix.
        backend: "detframe", "pycocotools" or "faster_coco_eval" (see the module docstring).
        max_dets: COCOeval's maxDets (AR@1/10/100; AP uses the last).
        cross_check: also run pycocotools and fail if any of the 12 numbers differs (slow; for audits).
    """

    def __init__(self, dataset: Any, prefix: str = "coco", backend: Backend = "detframe",
                 max_dets: MaxDets = (1, 10, 100), cross_check: bool = False) -> None:
        super().__init__(dataset, prefix)
        if backend not in BACKENDS:
            from ..errors import did_you_mean

            raise ConfigError(f"evaluator.{prefix}.backend: unknown COCO backend "
                              f"'{backend}'.{did_you_mean(backend, BACKENDS)} Known: {', '.join(BACKENDS)}")
        if backend == "faster_coco_eval":
            backend = _checked_faster_backend()
        self.backend = backend
        self.max_dets = tuple(int(m) for m in max_dets)
        self.cross_check = cross_check
        self._gt_dict = dataset.to_coco()
        self.result: CocoEvalResult | None = None
        self.summary = ""
        self._warned_no_gt_masks = False

    def _evaluate(self, predictions: Predictions) -> dict[str, float]:
        # pycocotools cannot load an empty result list
        if self.backend == "detframe" or len(predictions) == 0:
            self.result = coco_evaluate(self.gt, predictions, self.max_dets)
        else:
            self.result = reference_evaluate(self._gt_dict, predictions, self.max_dets, self.backend)
        stats = summarize(self.result)
        if self.cross_check:
            reference = summarize(reference_evaluate(self._gt_dict, predictions, self.max_dets,
                                                     "pycocotools"))
            diff = max(abs(stats[k] - reference[k]) for k in COCO_METRICS)
            if diff > (0.0 if self.backend == "detframe" else AGREEMENT_TOLERANCE):
                raise UserError(f"{self.prefix}: the {self.backend} backend differs from pycocotools "
                                f"by {diff:.3g}")
            log.info("%s: cross-check passed, the 12 numbers equal pycocotools'", self.prefix)
        self.summary = summary_text(stats, self.max_dets)
        if len(predictions) == 0:
            log.warning("%s: no detections at all", self.prefix)
        metrics = {f"{self.prefix}/{k}": v for k, v in stats.items()}
        segm = self._evaluate_masks(predictions)
        if segm is not None:
            self.summary += "\nsegm (instance masks):\n" + summary_text(segm, self.max_dets)
            metrics.update({f"{self.prefix}/segm_{k}": v for k, v in segm.items()})
        return metrics

    def _evaluate_masks(self, predictions: Predictions) -> dict[str, float] | None:
        """COCO mask AP's 12 numbers when the predictions carry masks and the ground truth has them."""
        if predictions.segmentation is None or len(predictions) == 0:
            return None
        anns = self._gt_dict.get("annotations") or []
        if not anns or not all("segmentation" in a for a in anns):
            if not self._warned_no_gt_masks:
                log.warning("%s: the detections have masks but the ground truth has no 'segmentation' "
                            "(data.with_masks=true with a COCO file that has them); no mask AP", self.prefix)
                self._warned_no_gt_masks = True
            return None
        return summarize(reference_evaluate(self._gt_dict, predictions, self.max_dets, "pycocotools", "segm"))

    # -- reports ----------------------------------------------------------------------------------

    def class_table(self) -> Table | None:
        if self.result is None:
            return None
        num_pos = _positives_per_category(self.gt)
        rows = []
        for k, name in enumerate(self.gt.category_names):
            s = summarize(self.result, category=k)
            rows.append([name, int(num_pos[k]), s["AP"], s["AP50"], s["AP75"], s["APs"], s["APm"], s["APl"],
                         s["AR100"]])
        return Table(f"{self.prefix}: per-class COCO AP ({self.backend})",
                     ["class", "gts", "AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"], rows,
                     note="n/a: no ground truth of that class (and size); "
                          "such classes do not count in the means")

    def pr_curves(self, iou: float = 0.5) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per class, the 101-point interpolated precision at IoU `iou`, all sizes, max_dets[-1]: the
        curve whose mean is AP@iou. Classes without ground truth are left out."""
        t = int(np.argmin(np.abs(np.linspace(0.5, 0.95, 10) - iou)))
        curves = {}
        for k, name in enumerate(self.gt.category_names):
            precision = self.result.precision[t, :, k, AREA_LABELS.index("all"), -1]
            if (precision > -1).all():
                curves[name] = (RECALL_THRESHOLDS, precision)
        return curves

    def ranked_detections(self) -> list[RankedDetections]:
        """Per class, the detections by score with their outcome at IoU 0.5 (for TensorBoard's curves)."""
        return ranked_at_iou50(self.gt, self.result, self.predictions)

    def write_report(self, out_dir: Path, writer: Any = None, step: int = 0,
                     plots: bool = True) -> list[Path]:
        from ..vis import pr_curves_figure, pr_grid_figure

        table = self.class_table()
        if table is None:
            return []
        files = [atomic_write_json(out_dir / f"{self.prefix}_per_class.json", table.to_records()),
                 atomic_write_text(out_dir / f"{self.prefix}_per_class.md", table.to_markdown()),
                 atomic_write_text(out_dir / f"{self.prefix}_summary.txt", self.summary + "\n")]
        if writer is not None:
            add_pr_curves(writer, f"{self.prefix}/pr_iou50", self.ranked_detections(), step)
        if plots:
            curves = self.pr_curves(0.5)
            ap50 = {r[0]: r[3] for r in table.rows}
            mean = (RECALL_THRESHOLDS, np.mean([p for _, p in curves.values()], axis=0)) if curves else None
            fig = pr_curves_figure(curves, ap50, f"{self.prefix}: precision-recall at IoU=0.50", mean,
                                   ap_name="AP50")
            files.append(atomic_save_figure(fig, out_dir / f"{self.prefix}_pr_curves.png"))
            fig = pr_grid_figure(curves, ap50, f"{self.prefix}: IoU=0.50", ap_name="AP50")
            files.append(atomic_save_figure(fig, out_dir / f"{self.prefix}_pr_per_class.png", dpi=90,
                                            tight=False))
        return files


def reference_evaluate(gt_dict: dict, predictions: Predictions, max_dets: tuple[int, ...],
                       backend: str, iou_type: str = "bbox") -> CocoEvalResult:
    """COCOeval of pycocotools or faster_coco_eval on the same input; returns its precision/recall
    arrays. `iou_type="segm"` evaluates the predictions' masks (their boxes left out, see above)."""
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    with contextlib.redirect_stdout(io.StringIO()):  # both print progress
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt_dict)  # COCOeval writes flags into the annotation dicts
        coco_gt.createIndex()
        quiet = {} if backend == "pycocotools" else {"print_function": lambda *args, **kwargs: None}
        results = to_coco_results(predictions)
        if iou_type == "segm":
            results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type, **quiet)
        coco_eval.params.maxDets = list(max_dets)
        coco_eval.evaluate()
        coco_eval.accumulate()
    cat_ids = np.asarray(sorted(coco_gt.getCatIds()), np.int64)
    return CocoEvalResult(np.asarray(coco_eval.eval["precision"]), np.asarray(coco_eval.eval["recall"]),
                          tuple(max_dets), cat_ids)


def _checked_faster_backend() -> str:
    """"faster_coco_eval" when it is installed and agrees with pycocotools on a built-in case, else
    "pycocotools" (with a warning). The check runs once per process (~0.1 s)."""
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        raise ConfigError("backend=faster_coco_eval: the package is not installed. "
                          "Install it with: pip install 'detframe[fast]' (or faster-coco-eval)") from None
    if "faster_coco_eval" not in _agreement:
        _agreement["faster_coco_eval"] = agreement("faster_coco_eval")
    diff = _agreement["faster_coco_eval"]
    if diff > AGREEMENT_TOLERANCE:
        log.warning("faster_coco_eval differs from pycocotools by %.3g on the self-check; using pycocotools",
                    diff)
        return "pycocotools"
    return "faster_coco_eval"


def agreement(backend: str, seeds: tuple[int, ...] = (0, 1)) -> float:
    """Largest difference of the 12 numbers between `backend` and pycocotools on built-in random cases."""
    from .synthetic import synthetic_case

    worst = 0.0
    for seed in seeds:
        gt_dict, preds = synthetic_case(num_images=30, quantize=bool(seed % 2), seed=seed)
        if backend == "detframe":
            ours = summarize(coco_evaluate(GroundTruth.from_coco(gt_dict), preds))
        else:
            ours = summarize(reference_evaluate(gt_dict, preds, (1, 10, 100), backend))
        ref = summarize(reference_evaluate(gt_dict, preds, (1, 10, 100), "pycocotools"))
        worst = max(worst, max(abs(ours[k] - ref[k]) for k in COCO_METRICS))
    return worst


def ranked_at_iou50(gt: GroundTruth, result: CocoEvalResult, preds: Predictions) -> list[RankedDetections]:
    """Per class, the detections ranked as accumulate ranks them, with their outcome at IoU 0.50."""
    ranked = result.ranked_iou50
    if ranked is None:  # another backend: its matches are not exposed; ours are the same
        ranked = coco_evaluate(gt, preds, result.max_dets).ranked_iou50
    cat_index, score, tp, fp = ranked
    num_pos = _positives_per_category(gt)
    return [RankedDetections(name, score[cat_index == k], tp[cat_index == k], fp[cat_index == k],
                             int(num_pos[k]))
            for k, name in enumerate(gt.category_names)]


def _positives_per_category(gt: GroundTruth) -> np.ndarray:
    """Non-crowd ground-truth boxes per category (what the per-class table calls gts)."""
    return np.bincount(gt.category_index(gt.category_id[~gt.iscrowd]), minlength=len(gt.category_ids))


