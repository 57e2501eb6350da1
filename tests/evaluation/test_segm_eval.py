"""COCO mask AP (`segm`): the same 12 numbers as pycocotools' own COCOeval on the same ground truth and
masks, written into results files and read back, and left out when there are no masks."""
import contextlib
import copy
import io
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detframe.data.datasets.segmentation import to_rle
from detframe.errors import UserError
from detframe.evaluation import COCO_METRICS, CocoEvaluator, GroundTruth, load_results, save_results
from detframe.evaluation.gather import merge_rank_predictions
from detframe.ops.masks import decode_masks
from detframe.structures import Detections

H, W = 60, 80


def rect(x1, y1, x2, y2):
    m = np.zeros((H, W), np.uint8)
    m[y1:y2, x1:x2] = 1
    return m


def rle(mask):
    r = mask_utils.encode(np.asfortranarray(mask))
    return {"size": r["size"], "counts": r["counts"].decode()}


def uncompressed(mask):
    """COCO's uncompressed RLE (list counts, column-major, background first), as crowd regions are written."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(np.r_[0, flat, 1 - flat[-1]]))
    return {"size": [H, W], "counts": np.diff(np.r_[0, changes]).tolist()}


class MaskedDataset:
    """Two images, two classes (ids 3 and 7); a polygon, a compressed RLE, an uncompressed crowd RLE."""

    category_ids = [3, 7]

    def to_coco(self):
        anns = [
            (1, 1, 3, [[10, 10, 30, 10, 30, 40, 10, 40]], 0),
            (2, 1, 7, rle(rect(40, 5, 70, 25)), 0),
            (3, 2, 3, rle(rect(5, 5, 25, 50)), 0),
            (4, 2, 7, uncompressed(rect(50, 30, 75, 55)), 1),
            (5, 2, 7, [[30, 20, 45, 20, 45, 35]], 0),
        ]
        annotations = []
        for i, image, cat, seg, crowd in anns:
            m = decode_masks([to_rle(seg, H, W)], H, W)[0]
            ys, xs = np.nonzero(m)
            annotations.append({"id": i, "image_id": image, "category_id": cat, "segmentation": seg,
                                "iscrowd": crowd, "area": float(m.sum()),
                                "bbox": [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                                         float(ys.max() - ys.min() + 1)]})
        return {"images": [{"id": 1, "width": W, "height": H}, {"id": 2, "width": W, "height": H}],
                "annotations": annotations,
                "categories": [{"id": 3, "name": "a"}, {"id": 7, "name": "b"}]}


def detections():
    """Image 1: a good and a shifted mask; image 2: a good one, one on the crowd region, a miss."""
    per_image = {
        1: [(rect(10, 10, 30, 40), 0, 0.9), (rect(45, 8, 70, 28), 1, 0.8), (rect(0, 40, 20, 60), 0, 0.3)],
        2: [(rect(6, 5, 25, 49), 0, 0.95), (rect(52, 32, 74, 54), 1, 0.7), (rect(60, 0, 80, 10), 1, 0.6)],
    }
    out = {}
    for image, items in per_image.items():
        masks = torch.from_numpy(np.stack([m for m, _, _ in items])).bool()
        boxes = torch.tensor([[float(np.nonzero(m)[1].min()), float(np.nonzero(m)[0].min()),
                               float(np.nonzero(m)[1].max() + 1), float(np.nonzero(m)[0].max() + 1)]
                              for m, _, _ in items])
        out[image] = Detections(boxes, torch.tensor([s for _, _, s in items]),
                                torch.tensor([label for _, label, _ in items]), masks)
    return out


def reference_segm(gt_dict, results):
    """pycocotools' COCOeval(iouType="segm") on results without boxes: the 12 stats."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(gt_dict)
        gt.createIndex()
        e = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), "segm")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return dict(zip(COCO_METRICS, e.stats.tolist()))


def test_segm_metrics_equal_pycocotools_bit_for_bit():
    ds = MaskedDataset()
    ev = CocoEvaluator(ds)
    dets = detections()
    ev.process([1, 2], [dets[1], dets[2]])
    metrics = ev.compute()
    results = [{"image_id": image, "category_id": ds.category_ids[int(label)], "score": float(score),
                "segmentation": rle(mask.numpy().astype(np.uint8))}
               for image, d in dets.items() for mask, label, score in zip(d.masks, d.labels, d.scores)]
    reference = reference_segm(ds.to_coco(), results)
    assert {k: metrics[f"coco/segm_{k}"] for k in COCO_METRICS} == reference
    assert 0 < metrics["coco/segm_AP"] < 1
    assert "coco/AP" in metrics  # box AP keeps its names
    assert "segm (instance masks)" in ev.summary


def test_results_file_round_trip_keeps_masks(tmp_path):
    ds = MaskedDataset()
    ev = CocoEvaluator(ds)
    dets = detections()
    ev.process([1, 2], [dets[1], dets[2]])
    metrics = ev.compute()
    path = save_results(ev.predictions, tmp_path / "detections.json")
    assert all("segmentation" in e for e in json.loads(path.read_text()))
    again = CocoEvaluator(ds).evaluate(load_results(path, GroundTruth.from_dataset(ds)))
    assert again == metrics


def test_results_file_with_masks_on_some_entries_only(tmp_path):
    entries = [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.5,
                "segmentation": rle(rect(0, 0, 5, 5))},
               {"image_id": 1, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.4}]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(UserError, match="entry 1 .*no segmentation"):
        load_results(path, GroundTruth.from_dataset(MaskedDataset()))
    entries[1]["segmentation"] = [[0, 0, 5, 0, 5, 5]]
    path.write_text(json.dumps(entries))
    with pytest.raises(UserError, match="entry 1 .*segmentation must be an RLE"):
        load_results(path, GroundTruth.from_dataset(MaskedDataset()))


def test_no_segm_without_masks_or_ground_truth_masks():
    ds = MaskedDataset()
    ev = CocoEvaluator(ds)
    d = detections()[1]
    ev.process([1], [Detections(d.boxes, d.scores, d.labels)])
    assert not any("segm" in k for k in ev.compute())
    boxes_only = type("D", (), {"category_ids": [3, 7], "to_coco": lambda self: {
        **ds.to_coco(), "annotations": [{k: v for k, v in a.items() if k != "segmentation"}
                                        for a in ds.to_coco()["annotations"]]}})()
    ev = CocoEvaluator(boxes_only)
    ev.process([1], [d])
    assert not any("segm" in k for k in ev.compute())


def test_ranks_gather_masks_as_rle():
    """What crosses processes is the RLE rows (Predictions), merged in rank order."""
    ds = MaskedDataset()
    parts = []
    for image, d in detections().items():
        ev = CocoEvaluator(ds)
        ev.process([image], [d])
        parts.append((np.array([image]), ev.buffer.gathered()[1]))
    assert isinstance(parts[0][1].segmentation[0]["counts"], str)
    _, merged = merge_rank_predictions(parts)
    assert len(merged.segmentation) == len(merged) == 6


def test_a_concatenation_of_masked_sets_gives_its_masks_to_the_evaluator(tiny_shapes):
    """ConcatDataset's ground truth is made from its records: masks included, so mask AP of the ground
    truth's own masks is 1."""
    from detframe.data import CocoDetection, ConcatDataset
    from detframe.ops.masks import decode_masks

    parts = [CocoDetection(str(tiny_shapes / "annotations" / f"instances_{s}.json"),
                           str(tiny_shapes / "JPEGImages"), with_masks=True) for s in ("train", "val")]
    ds = ConcatDataset(parts)
    ev = CocoEvaluator(ds)
    for rec in ds.records:
        masks = torch.from_numpy(decode_masks(rec.masks, rec.height, rec.width)).bool()
        ev.process([rec.image_id], [Detections(torch.from_numpy(rec.boxes), torch.ones(len(rec.boxes)),
                                               torch.from_numpy(rec.labels), masks)])
    metrics = ev.compute()
    assert metrics["coco/segm_AP"] == metrics["coco/AP"] == 1.0
