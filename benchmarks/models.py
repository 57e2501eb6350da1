"""Speed of detframe's detectors against torchvision's same networks, and every model's size and FLOPs.

    python benchmarks/models.py                                  # CPU, batch 2, 15 rounds
    python benchmarks/models.py --models ssdlite320_mobilenet_v3_large --batch 4 --rounds 11
    python benchmarks/models.py --device cuda --amp fp16 --batch 8   # GPU with autocast (both sides)
    python benchmarks/models.py --channels-last                  # NHWC on both sides
    python benchmarks/models.py --skip-speed --skip-flops --channels-last-gain --rounds 7
                                                                 # NHWC vs NCHW, every config
    python benchmarks/models.py --skip-speed                     # parameters and FLOPs only

For each detector torchvision also has (SSD300-VGG16, SSDLite320-MobileNetV3-Large, RetinaNet-R50-FPN,
FCOS-R50-FPN, Faster and Mask R-CNN-R50-FPN) it times a training step (forward, losses, backward, SGD
step) and inference (forward, decoding, NMS, rescaling; Mask R-CNN's masks pasted into the image) of ours
and of torchvision's, on the same random uint8 images and boxes (box-shaped instance masks for Mask
R-CNN), alternating ours and theirs round by round so both see the same machine load, and
prints the median times and the ratio
ours / torchvision (<= 1.0: ours is not slower): the median of the per-round ratios, with a 95% bootstrap
interval, beside the ratio of the medians and of the fastest rounds. On a shared machine single rounds
vary by 30%: use 15 rounds or more. Then parameters and forward FLOPs (multiply and add
counted as two, torch.utils.flop_counter.FlopCounterMode) of every model config at its usual input size.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace

import torch
from torchvision.models import detection

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detframe.config import compose  # noqa: E402
from detframe.models import build_detector  # noqa: E402
from detframe.models.convert import EQUIVALENTS, load_torchvision  # noqa: E402
from detframe.models.detectors import TwoStageDetector  # noqa: E402
from detframe.structures import Batch, Instances  # noqa: E402

NUM_CLASSES = 80  # COCO's; torchvision's SSDs count the background as one more
# torchvision builder -> input size (square) and extra builder arguments (RetinaNet's transform would
# otherwise resize to 800 px; min = max = the size makes it a no-op, like ours).
PAIRS = {
    "ssd300_vgg16": (300, {}),
    "ssdlite320_mobilenet_v3_large": (320, {}),
    "retinanet_resnet50_fpn": (512, {"min_size": 512, "max_size": 512}),
    "fcos_resnet50_fpn": (512, {"min_size": 512, "max_size": 512}),
    "fasterrcnn_resnet50_fpn": (512, {"min_size": 512, "max_size": 512}),
    "maskrcnn_resnet50_fpn": (512, {"min_size": 512, "max_size": 512}),
}
# Every model config and the input size it is usually run at (h, w), for parameters and FLOPs.
SIZES = {
    "ssd300_vgg16": (300, 300), "ssd512_vgg16": (512, 512), "ssdlite_mobilenetv3": (320, 320),
    "ssdlite_mobilenetv3_small": (256, 256), "retinanet_r50_fpn": (800, 1216),
    "retinanet_r18_fpn": (800, 1216), "yolov3_d53": (608, 608), "yolov3_d53_small": (320, 320),
    "fcos_r50_fpn": (800, 1216), "fcos_r18_fpn": (800, 1216),
    "faster_rcnn_r50_fpn": (800, 1216), "faster_rcnn_r18_fpn": (800, 1216),
    "cascade_rcnn_r50_fpn": (800, 1216), "mask_rcnn_r50_fpn": (800, 1216), "mask_rcnn_r18_fpn": (800, 1216),
    "tal_cspnext_nano": (640, 640), "tal_cspnext_s": (640, 640),
}
# torchvision builders whose class count includes the background.
WITH_BACKGROUND = ("ssd300_vgg16", "ssdlite320_mobilenet_v3_large", "fasterrcnn_resnet50_fpn",
                   "maskrcnn_resnet50_fpn")


def compose_model(name: str, overrides: list[str] = ()) -> torch.nn.Module:
    cfg = compose([f"model={name}", *overrides])
    (cfg.model.get("head") or cfg.model.roi_head).num_classes = NUM_CLASSES  # a two-stage model's RoI head
    if cfg.model.get("roi_head") is not None and cfg.model.roi_head.get("mask_head") is not None:
        cfg.model.roi_head.mask_head.num_classes = NUM_CLASSES
    return build_detector(cfg.model)


def make_pair(arch: str, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """torchvision's model (random weights, nothing downloaded) and ours with the same weights."""
    size, kwargs = PAIRS[arch]
    torch.manual_seed(0)
    theirs = getattr(detection, arch)(weights=None, weights_backbone=None,
                                      num_classes=NUM_CLASSES + (arch in WITH_BACKGROUND), **kwargs)
    name, overrides = EQUIVALENTS[arch]
    ours = compose_model(name, overrides)
    load_torchvision(ours, theirs.state_dict(), arch)
    return theirs.to(device), ours.to(device)


def make_inputs(size: int, batch: int, device: torch.device,
                masks: bool = False) -> tuple[Batch, list[torch.Tensor], list[dict]]:
    """The same images and boxes (three per image, xyxy pixels) for ours (a Batch of uint8) and for
    torchvision's (float 0..1 images and target dicts; labels shifted past SSD's background); with
    `masks`, each box's instance mask (uint8 ones inside it) on both sides."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g)
    xy = torch.rand(batch, 3, 2, generator=g) * size * 0.6
    boxes = torch.cat([xy, xy + torch.rand(batch, 3, 2, generator=g) * size * 0.35 + 10], -1)
    labels = torch.randint(0, NUM_CLASSES, (batch, 3), generator=g)
    bitmaps = [box_masks(b, size) if masks else None for b in boxes]
    targets = [Instances(b, lab, torch.zeros(3, dtype=torch.bool), m)
               for b, lab, m in zip(boxes, labels, bitmaps)]
    ours = Batch(images, targets, [(size, size)] * batch, [(size, size)] * batch, list(range(batch)),
                 [(1.0, 1.0)] * batch, [(0.0, 0.0)] * batch).to(device)
    theirs = [im.to(device).float() / 255 for im in images]
    dicts = [{"boxes": b.to(device), "labels": lab.to(device)} for b, lab in zip(boxes, labels)]
    for d, m in zip(dicts, bitmaps):
        if m is not None:
            d["masks"] = m.to(device)
    return ours, theirs, dicts


def box_masks(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, size, size]: ones inside each box (xyxy pixels, rounded)."""
    out = torch.zeros(len(boxes), size, size, dtype=torch.uint8)
    for mask, (x0, y0, x1, y1) in zip(out, boxes.round().long().tolist()):
        mask[y0:y1, x0:x1] = 1
    return out


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def autocast(device: torch.device, amp: str):
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if amp == "fp16" else torch.bfloat16)


def step_fns(model: torch.nn.Module, loss: Callable[[], dict], infer: Callable[[], object],
             device: torch.device, amp: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """(training step, inference) closures: SGD on the summed losses, with a GradScaler under fp16."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")

    def train() -> None:
        model.train()
        with autocast(device, amp):
            total = sum(loss().values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()

    def inference() -> None:
        model.eval()
        with torch.no_grad(), autocast(device, amp):
            infer()

    return train, inference


def paired_summary(ours: list[float], theirs: list[float], resamples: int = 2000) -> dict[str, float]:
    """Ratios of two interleaved timing series, robust to a noisy machine.

    `ours[i]` and `theirs[i]` ran back to back, so their ratio cancels load that changes between rounds.
    Returns the median of those per-round ratios with a 95% percentile-bootstrap interval (fixed seed),
    the ratio of the medians, and the ratio of the fastest rounds (the least disturbed run of each,
    timeit's convention).
    """
    ratios = [a / b for a, b in zip(ours, theirs)]
    rng = random.Random(0)
    boot = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return {
        "paired": statistics.median(ratios),
        "low": boot[int(0.025 * resamples)],
        "high": boot[int(0.975 * resamples) - 1],
        "medians": statistics.median(ours) / statistics.median(theirs),
        "fastest": min(ours) / min(theirs),
    }


def compare(arch: str, args: argparse.Namespace, device: torch.device) -> None:
    theirs, ours = make_pair(arch, device)
    batch, images, targets = make_inputs(PAIRS[arch][0], args.batch, device, masks=ours.requires_masks)
    if args.channels_last:  # both sides, weights and inputs
        theirs, ours = (theirs.to(memory_format=torch.channels_last),
                        ours.to(memory_format=torch.channels_last))
        batch = replace(batch, images=batch.images.contiguous(memory_format=torch.channels_last))
        # torchvision's transform stacks its images into a new (contiguous) tensor: only its weights change
    our_train, our_infer = step_fns(ours, lambda: ours.loss(batch), lambda: ours.predict(batch),
                                    device, args.amp)
    their_train, their_infer = step_fns(theirs, lambda: theirs(images, targets), lambda: theirs(images),
                                        device, args.amp)
    for kind, mine, ref in (("train step", our_train, their_train), ("inference", our_infer, their_infer)):
        for _ in range(args.warmup):
            mine(), ref()
        s = alternate(ref, mine, args.rounds, device)  # ratio: second (ours) / first (torchvision)
        a, b = s["second"], s["first"]
        print(f"{arch:30s} {kind:10s} batch {args.batch} {PAIRS[arch][0]}px  ours {a * 1e3:8.1f} ms  "
              f"torchvision {b * 1e3:8.1f} ms  ratio {s['paired']:.3f} (95% {s['low']:.3f}-{s['high']:.3f}; "
              f"of medians {s['medians']:.3f}, of fastest {s['fastest']:.3f})", flush=True)


def alternate(first: Callable[[], None], second: Callable[[], None], rounds: int,
              device: torch.device) -> dict[str, float]:
    """Time two closures in alternating order for `rounds` rounds; paired_summary of first / second."""
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        order = ((0, first), (1, second)) if r % 2 == 0 else ((1, second), (0, first))
        for who, fn in order:
            gc.collect()
            times[who].append(timed(fn, device))
    return {"first": statistics.median(times[0]), "second": statistics.median(times[1]),
            **paired_summary(times[1], times[0])}


def channels_last_gain(args: argparse.Namespace, device: torch.device) -> None:
    """Every model config, NHWC (runtime.channels_last=true) against NCHW with the same weights and inputs."""
    print(f"\n{'model config':28s} {'input':>7s}  {'':10s} {'NCHW':>9s} {'NHWC':>9s}  NHWC / NCHW (95%)")
    for name, size in SIZES.items():
        side = min(size[0], args.gain_size)
        torch.manual_seed(0)
        nchw = compose_model(name).to(device)
        nhwc = compose_model(name).to(device)
        nhwc.load_state_dict(nchw.state_dict())
        nhwc = nhwc.to(memory_format=torch.channels_last)
        batch, _, _ = make_inputs(side, args.batch, device, masks=nchw.requires_masks)
        batch_nhwc = replace(batch, images=batch.images.contiguous(memory_format=torch.channels_last))
        a = step_fns(nchw, lambda: nchw.loss(batch), lambda: nchw.predict(batch), device, args.amp)
        b = step_fns(nhwc, lambda: nhwc.loss(batch_nhwc), lambda: nhwc.predict(batch_nhwc), device, args.amp)
        for kind, first, second in (("train step", a[0], b[0]), ("inference", a[1], b[1])):
            for _ in range(args.warmup):
                first(), second()
            s = alternate(first, second, args.rounds, device)
            print(f"{name:28s} {side:>4d}px  {kind:10s} {s['first'] * 1e3:7.1f}ms "
                  f"{s['second'] * 1e3:7.1f}ms  {s['paired']:.3f} ({s['low']:.3f}-{s['high']:.3f})",
                  flush=True)


def count(name: str, size: tuple[int, int]) -> tuple[float, float]:
    """(millions of parameters, GFLOPs of one forward pass on one image of `size`)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = compose_model(name).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    counter = FlopCounterMode(display=False)
    images = torch.zeros(1, 3, *size, dtype=torch.uint8)
    with torch.no_grad(), counter:
        if isinstance(model, TwoStageDetector):  # its forward is the features only: count RPN + RoI head too
            model.predict(Batch(images, [], [size], [size], [0], [(1.0, 1.0)], [(0.0, 0.0)]))
        else:
            model(images)
    return params, counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per side (median taken)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", choices=["off", "fp16", "bf16"], default=None,
                        help="autocast for both sides (default: fp16 on CUDA, off on CPU)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC weights and inputs on both sides")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--channels-last-gain", action="store_true",
                        help="also time every model config NHWC against NCHW "
                             "(the runtime.channels_last default)")
    parser.add_argument("--gain-size", type=int, default=512,
                        help="largest input side for --channels-last-gain")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-flops", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    args.amp = args.amp or ("fp16" if device.type == "cuda" else "off")
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    print(f"torch {torch.__version__}, device {device}, amp {args.amp}, channels_last {args.channels_last}, "
          f"{torch.get_num_threads()} threads, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if not args.skip_speed:
        for arch in args.models:
            compare(arch, args, device)
    if args.channels_last_gain:
        channels_last_gain(args, device)
    if not args.skip_flops:
        print(f"\n{'model config':28s} {'input':>10s} {'params (M)':>11s} {'GFLOPs':>9s}")
        for name, size in SIZES.items():
            params, flops = count(name, size)
            print(f"{name:28s} {size[0]:>4d}x{size[1]:<5d} {params:11.2f} {flops:9.2f}", flush=True)


if __name__ == "__main__":
    main()
