"""Time per iteration of the Runner's training loop against a bare PyTorch loop on the same model, data
and batch, in the same process (interleaved, repeated, medians). Target: overhead <= 5%.

    python benchmarks/train_loop.py                     # CPU: the default experiment's model, 256 px, batch 8
    python benchmarks/train_loop.py --cuda-matrix       # CUDA: SSD300 with AMP off/fp16/bf16 x channels_last

The runner side is `Runner.train_one_epoch` with its per-iteration hooks (logger with TensorBoard every
`train.log_interval` iterations, as in the default config); the bare side is the minimal loop anyone
would write: to(device), loss, zero_grad, backward, step, scheduler step, loss.item(). Both iterate the
same DataLoader over images decoded and transformed once and kept in memory, so data loading cost is
identical and small. On CUDA it also prints images/s and peak GPU memory for each setting.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detframe.config import compose  # noqa: E402
from detframe.data import ensure_shapes  # noqa: E402
from detframe.engine import Runner, build_runner  # noqa: E402


class InMemory(Dataset):
    """The samples of `dataset`, decoded and transformed once (augmentation frozen: this is about speed)."""

    def __init__(self, dataset: Dataset, count: int) -> None:
        self.samples = [dataset[i % len(dataset)] for i in range(count)]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        return self.samples[index]


def build(args: argparse.Namespace, data_root: Path, work_dir: Path, amp: str,
          channels_last: bool | None) -> Runner:
    """The runner of the benchmarked config; `channels_last` None keeps the config's (runtime.channels_last,
    true by default: what a training run uses)."""
    layout = [] if channels_last is None else [f"runtime.channels_last={str(channels_last).lower()}"]
    overrides = [f"data.root={data_root}", f"model={args.model}", f"pipeline.size={args.size}",
                 f"data.batch_size={args.batch}", "data.num_workers=0", f"runtime.amp={amp}", *layout,
                 f"runtime.device={args.device}", "hooks.progress=null", "train.max_epochs=1000",
                 *args.overrides]
    runner = build_runner(compose(overrides), work_dir)
    cached = InMemory(runner.train_loader.dataset, args.iters * args.batch)
    runner.train_loader = DataLoader(cached, batch_size=args.batch, shuffle=True, drop_last=True,
                                     collate_fn=runner.train_loader.collate_fn,
                                     pin_memory=runner.device.type == "cuda")
    runner.call_hooks("before_train")
    return runner


def bare_epoch(runner: Runner) -> None:
    """The bare loop: same model, optimizer, schedule, loader, AMP settings; no hooks, no bookkeeping."""
    model, optimizer, scheduler, scaler = runner.model, runner.optimizer, runner.scheduler, runner.scaler
    dtype, device = runner.amp_dtype, runner.device
    model.train()
    for batch in runner.train_loader:
        batch = batch.to(device, non_blocking=True)
        if runner.channels_last:
            batch.images = batch.images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            losses = model.loss(batch)
        total = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total.item()


def timed(fn, runner: Runner) -> float:
    sync = torch.cuda.synchronize if runner.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - start) / len(runner.train_loader)


def compare(runner: Runner, repeats: int) -> tuple[float, float]:
    """Median seconds per iteration (runner, bare), alternating which goes first."""
    def runner_epoch() -> None:
        runner.train_one_epoch()

    runner_epoch()
    bare_epoch(runner)  # warm-up: allocator, kernels, caches
    if runner.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(runner.device)
    ours, bare = [], []
    for r in range(repeats):
        pair = [(ours, runner_epoch), (bare, lambda: bare_epoch(runner))]
        for out, fn in (pair if r % 2 == 0 else pair[::-1]):
            out.append(timed(fn, runner))
    return statistics.median(ours), statistics.median(bare)


def report(label: str, runner: Runner, ours: float, bare: float, batch: int) -> None:
    memory = ""
    if runner.device.type == "cuda":
        memory = f"  peak {torch.cuda.max_memory_allocated(runner.device) / 2**30:.2f} GiB"
    print(f"{label:<28} runner {ours * 1000:8.1f} ms/it  bare {bare * 1000:8.1f} ms/it  "
          f"ratio {ours / bare:.3f} (overhead {100 * (ours / bare - 1):+.1f}%)  "
          f"{batch / ours:7.1f} img/s{memory}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ssdlite_mobilenetv3_small")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=10, help="iterations per timed epoch")
    parser.add_argument("--repeats", type=int, default=7, help="timed epochs per loop (medians are reported)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--cuda-matrix", action="store_true",
                        help="SSD300 (unless --model is given) with AMP off/fp16/bf16, "
                             "with and without channels_last")
    parser.add_argument("overrides", nargs="*", help="extra config overrides, e.g. train.log_interval=1")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="detframe-bench-") as tmp:
        # The runner's log lines go to a file at INFO, as in a real run (formatting and writing included).
        logging.basicConfig(level=logging.INFO, handlers=[logging.FileHandler(Path(tmp) / "train.log")],
                            force=True)
        data_root = ensure_shapes(Path(tmp) / "shapes", num_train=max(16, args.iters * args.batch),
                                  num_val=4, seed=0)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
              f"{args.iters} it x {args.repeats} repeats", flush=True)
        if args.cuda_matrix:
            if not torch.cuda.is_available():
                sys.exit("--cuda-matrix needs a CUDA device")
            if "--model" not in sys.argv:
                args.model, args.size = "ssd300_vgg16", 300
            settings = [(amp, cl) for amp in ("off", "fp16", "bf16") for cl in (False, True)]
        else:
            settings = [("off", None)]
        print(f"model {args.model} at {args.size} px", flush=True)
        for i, (amp, channels_last) in enumerate(settings):
            runner = build(args, data_root, Path(tmp) / f"run{i}", amp, channels_last)
            with contextlib.redirect_stdout(sys.stderr):
                ours, bare = compare(runner, args.repeats)
            report(f"{runner.device.type} amp={amp} channels_last={runner.channels_last}", runner, ours, bare,
                   args.batch)
            del runner
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
