"""Data pipeline speed on the raccoon photos.

1. images/s of the SSD300 and YOLO training pipelines (configs/pipeline/ssd300.yaml, yolo.yaml), one
   process, image decoding included, against a baseline composed directly with albumentations from the
   same operations in the same run (albumentations' nearest equivalents where it lacks one: Affine
   zoom-out for Expand, RandomSizedBBoxSafeCrop for the min-IoU crop, A.Mosaic for the mosaic).
   The two alternate image by image (so that load from other processes hits both alike), over
   `--repeats` rounds; the median ratio is reported.
2. Whether the loader with 2 workers is the bottleneck of an SSD300 (VGG16) training step here: the
   loader's rate alone, the step's rate alone, and the time a training loop waits for data.

    python benchmarks/data_pipeline.py [--root ../shared/datasets/raccoon] [--repeats 7] [--batch 8]
                                       [--steps 4]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from omegaconf import OmegaConf

from detframe.config import compose, config_dir
from detframe.data import SampleKey, VOCDetection, build_dataloader
from detframe.data.transforms import build_pipeline

REPO = Path(__file__).resolve().parent.parent
MEAN = (123.675, 116.28, 103.53)


def pipeline(name: str, size: int) -> list:
    cfg = OmegaConf.create({"pipeline": OmegaConf.load(config_dir() / "pipeline" / f"{name}.yaml")})
    cfg.pipeline.size = size
    return OmegaConf.to_container(cfg, resolve=True)["pipeline"]["train"]


def decode(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def albu_ssd(size: int) -> A.Compose:
    photometric = A.RandomOrder([
        A.RandomBrightnessContrast(brightness_limit=32 / 255, contrast_limit=0, brightness_by_max=True,
                                   p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=(-0.5, 0.5), p=0.5),
        A.ColorJitter(brightness=0, contrast=0, saturation=(0.5, 1.5), hue=0, p=0.5),
        A.HueSaturationValue(hue_shift_limit=18, sat_shift_limit=0, val_shift_limit=0, p=0.5),
    ], n=4, p=1.0)
    return A.Compose([
        photometric,
        A.Affine(scale=(0.25, 1.0), keep_ratio=True, translate_percent=(-0.3, 0.3), fill=MEAN,
                 p=0.5),  # ~ Expand
        A.RandomSizedBBoxSafeCrop(height=size, width=size, erosion_rate=0.0,
                                  p=1.0),  # ~ min-IoU crop + resize
        A.HorizontalFlip(p=0.5),
    ], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=0.0))


def albu_yolo(size: int) -> tuple[A.Compose, A.Compose]:
    load = A.Compose([A.LongestMaxSize(max_size=size, p=1.0)],
                     bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]))
    main = A.Compose([
        A.Mosaic(grid_yx=(2, 2), target_size=(size, size), cell_shape=(size, size), fit_mode="contain",
                 fill=114, p=1.0),
        A.Affine(scale=(0.5, 1.5), translate_percent=(-0.1, 0.1), rotate=(-10, 10), shear=(-2, 2),
                 fill=114, p=1.0),
        A.HueSaturationValue(hue_shift_limit=5, sat_shift_limit=30, val_shift_limit=30, p=1.0),
        A.HorizontalFlip(p=0.5),
        A.LongestMaxSize(max_size=size, p=1.0),
        A.PadIfNeeded(min_height=size, min_width=size, fill=114, p=1.0),
    ], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=0.1))
    return load, main


class Baseline:
    """The same recipes composed directly with albumentations, on the same records."""

    def __init__(self, dataset: VOCDetection, size_ssd: int, size_yolo: int, mixup_p: float) -> None:
        self.records, self.mixup_p = dataset.records, mixup_p
        self.ssd = albu_ssd(size_ssd)
        self.yolo_load, self.yolo = albu_yolo(size_yolo)

    def raw(self, i: int) -> dict:
        rec = self.records[i]
        return {"image": decode(rec.path), "bboxes": rec.boxes, "labels": rec.labels}

    def ssd_sample(self, i: int) -> dict:
        return self.ssd(**self.raw(i))

    def _mosaic(self, i: int, rng: np.random.Generator) -> dict:
        items = [self.yolo_load(**self.raw(j)) for j in [i, *rng.integers(len(self.records), size=3)]]
        meta = [{"image": d["image"], "bboxes": d["bboxes"], "labels": d["labels"]} for d in items[1:]]
        return self.yolo(**items[0], mosaic_metadata=meta)

    def yolo_sample(self, i: int, rng: np.random.Generator) -> dict:
        out = self._mosaic(i, rng)
        if rng.random() < self.mixup_p:  # albumentations has no two-image blend: the same cv2 call as ours
            other = self._mosaic(int(rng.integers(len(self.records))), rng)
            out["image"] = cv2.addWeighted(out["image"], 0.5, other["image"], 0.5, 0.0)
        return out


def paired_round(ours, baseline, indices) -> tuple[float, float]:
    """images/s of both over `indices`, alternating image by image so that both see the same load."""
    t_ours = t_base = 0.0
    for i in indices:
        start = time.perf_counter()
        ours(i)
        middle = time.perf_counter()
        baseline(i)
        t_ours, t_base = t_ours + middle - start, t_base + time.perf_counter() - middle
    return len(indices) / t_ours, len(indices) / t_base


def compare(name: str, ours, baseline, indices, repeats: int) -> None:
    paired_round(ours, baseline, indices[:4])  # warm-up (imports, caches)
    rounds = [paired_round(ours, baseline, indices) for _ in range(repeats)]
    m_ours, m_base = statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)
    ratio = statistics.median(r[0] / r[1] for r in rounds)
    print(f"{name:<5} pipeline, 1 process, decode included: detframe {m_ours:6.1f} img/s   "
          f"albumentations baseline {m_base:6.1f} img/s   ratio {ratio:.2f}x (median of {repeats} rounds of "
          f"{len(indices)} images, alternating image by image; round ratios "
          f"{min(r[0] / r[1] for r in rounds):.2f}-{max(r[0] / r[1] for r in rounds):.2f})")


def pipelines(root: str, repeats: int, count: int) -> None:
    ssd = VOCDetection(root, "train", class_names=["raccoon"],
                       transforms=build_pipeline(pipeline("ssd300", 300)))
    yolo_cfg = pipeline("yolo", 640)
    yolo = VOCDetection(root, "train", class_names=["raccoon"], transforms=build_pipeline(yolo_cfg))
    mixup_p = next(t["p"] for t in yolo_cfg if t["type"] == "MixUp")
    base = Baseline(ssd, 300, 640, mixup_p)
    indices = list(range(min(count, len(ssd))))
    rng = np.random.default_rng(0)
    compare("SSD", lambda i: ssd[SampleKey(i, i)], base.ssd_sample, indices, repeats)
    compare("YOLO", lambda i: yolo[SampleKey(i, i)], lambda i: base.yolo_sample(i, rng),
            indices[: max(8, count // 2)], repeats)


def loader_vs_step(root: str, batch: int, steps: int, workers: int) -> None:
    from detframe.models import build_detector

    cfg = compose(["model=ssd300_vgg16", "data=raccoon", f"data.root={root}", "pipeline=ssd300",
                                       "pipeline.size=300"])
    dataset = VOCDetection(root, "train", class_names=["raccoon"],
                           transforms=build_pipeline(pipeline("ssd300", 300)))
    loader = build_dataloader(dataset, batch, workers, train=True, size_divisor=1)
    # 1. the loader alone
    it = iter(loader)
    next(it)  # workers started
    start, n = time.perf_counter(), 0
    for n, _ in enumerate(it, 1):
        if n == 2 * steps + 4:
            break
    loader_rate = n * batch / (time.perf_counter() - start)
    # 2. the training step alone, on one batch held in memory
    model = build_detector(cfg.model)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    held = next(iter(build_dataloader(dataset, batch, 0, train=True, size_divisor=1)))

    def step(b) -> None:
        losses = model.loss(b)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()

    step(held)  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(held)
        times.append(time.perf_counter() - start)
    step_time = statistics.median(times)
    # 3. both together: how long each step waits for its batch
    waits, computes = [], []
    it = iter(loader)
    for k in range(steps + 1):
        start = time.perf_counter()
        b = next(it)
        waited = time.perf_counter() - start
        start = time.perf_counter()
        step(b)
        if k:  # the first batch waits for the workers to start
            waits.append(waited)
            computes.append(time.perf_counter() - start)
    wait = statistics.median(waits)
    print(f"SSD300-VGG16 training step, batch {batch}, {torch.get_num_threads()} threads: "
          f"{step_time:.2f} s = {batch / step_time:.1f} img/s")
    print(f"loader alone, {workers} workers, ssd300 pipeline: {loader_rate:.1f} img/s "
          f"({loader_rate / (batch / step_time):.0f}x what the step consumes)")
    print(f"training loop with that loader: median wait for a batch {wait * 1000:.1f} ms per step "
          f"({100 * wait / (wait + statistics.median(computes)):.1f}% of the step): the loader is "
          f"{'NOT ' if wait < 0.05 * statistics.median(computes) else ''}the bottleneck")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "datasets" / "raccoon"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--images", type=int, default=40, help="images per timed round (YOLO: half)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-step", action="store_true", help="only the pipeline comparison")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one process, as a DataLoader worker runs it; also keeps the two sides comparable
    print(f"torch {torch.__version__}, albumentations {A.__version__}, opencv {cv2.__version__}; "
          f"load average {' '.join(f'{v:.2f}' for v in __import__('os').getloadavg())}")
    pipelines(args.root, args.repeats, args.images)
    if not args.skip_step:
        loader_vs_step(args.root, args.batch, args.steps, args.workers)


if __name__ == "__main__":
    main()
