"""Predictions are gathered across ranks before computing: a real 2-process gloo run on the CPU."""
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from detframe.evaluation import Predictions, build_evaluator
from detframe.evaluation.gather import merge_rank_predictions
from detframe.evaluation.synthetic import synthetic_case
from detframe.structures import Detections


class SyntheticDataset:
    def __init__(self, seed: int = 3):
        self.gt, self.preds = synthetic_case(num_images=12, num_classes=3, dets_per_image=10, seed=seed)
        self.category_ids = [c["id"] for c in self.gt["categories"]]

    def to_coco(self):
        return self.gt

    def detections(self, image_id: int) -> Detections:
        p = self.preds.select(self.preds.image_id == image_id)
        xyxy = np.concatenate([p.bbox[:, :2], p.bbox[:, :2] + p.bbox[:, 2:]], axis=1)
        labels = np.searchsorted(self.category_ids, p.category_id)
        return Detections(torch.tensor(xyxy, dtype=torch.float32), torch.tensor(p.score, dtype=torch.float32),
                          torch.tensor(labels))


CONFIG = {"coco": {"type": "CocoEvaluator"}, "voc12": {"type": "VOCEvaluator", "metric": "voc12"}}


def evaluate(image_ids):
    dataset = SyntheticDataset()
    group = build_evaluator(CONFIG, dataset)
    group.reset()
    for i in range(0, len(image_ids), 2):  # batches of 2
        batch = image_ids[i:i + 2]
        group.process(batch, [dataset.detections(j) for j in batch])
    return group.compute()


def _rank(rank, world, init_file, shards, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        out[rank] = evaluate(shards[rank])
    finally:
        dist.destroy_process_group()


def test_two_ranks_give_the_single_process_numbers(tmp_path):
    image_ids = [img["id"] for img in SyntheticDataset().gt["images"]]
    # a DistributedSampler's interleaved shards, padded by repeating the first image
    shards = [image_ids[0::2], image_ids[1::2] + image_ids[:1]]
    with mp.Manager() as manager:
        out = manager.dict()
        # fork: the children need no fresh import of torch (seconds on a small machine); CPU only,
        # no CUDA state
        mp.start_processes(_rank, args=(2, str(tmp_path / "init"), shards, out), nprocs=2, join=True,
                           start_method="fork")
        per_rank = dict(out)
    single = evaluate(image_ids)
    assert per_rank[0] == per_rank[1] == single
    assert single["coco/AP"] > 0.05


def test_merge_keeps_each_image_from_its_first_rank():
    def preds(ids):
        return Predictions(np.array(ids), np.ones(len(ids), np.int64), np.ones((len(ids), 4)),
                           np.arange(len(ids), dtype=float))

    ids, merged = merge_rank_predictions([(np.array([1, 2]), preds([1, 1, 2])),
                                          (np.array([3, 1]), preds([3, 1]))])
    assert ids.tolist() == [1, 2, 3] and merged.image_id.tolist() == [1, 1, 2, 3]
    assert merged.score.tolist() == [0, 1, 2, 0]  # image 1 from rank 0 only
