"""Shared fixtures: a tiny generated shapes set, config composition, the real raccoon set when present."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Idle OpenMP threads sleep instead of spinning. On a busy machine (CI's 2 cores shared, or several
# test runs at once) two spinning threads wait for each other's time slices: a Mask R-CNN step was
# measured at 5.3 CPU-s that way against 0.7 with passive waiting. Set before torch loads OpenMP;
# subprocesses (run_tool) inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "detframe" / "configs"
RACCOON = Path(os.environ.get("DETFRAME_RACCOON", REPO.parent / "shared" / "datasets" / "raccoon"))

needs_raccoon = pytest.mark.skipif(
    not (RACCOON / "Annotations").is_dir(),
    reason=f"the raccoon dataset is not at {RACCOON} (set DETFRAME_RACCOON)"
)

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory) -> Path:
    """A 12-image shapes set (8 train, 4 val) in both layouts."""
    from detframe.data import ensure_shapes

    return ensure_shapes(tmp_path_factory.mktemp("data") / "shapes", num_train=8, num_val=4, seed=1)


def compose(overrides: list[str] | None = None, config_name: str = "train"):
    """The composed config, as tools/train.py would build it (errors as `ConfigError`)."""
    from detframe.config import compose as compose_config

    return compose_config(overrides or [], config_name=config_name)


# Small and fast: MobileNetV3-Small SSDLite at 128 px on the tiny set, one loader process.
FAST = [
    "model.backbone.arch=small", "pipeline.size=128", "data.batch_size=4", "data.val_batch_size=4",
    "data.num_workers=0", "train.log_interval=1", "hooks.progress=null",
]


def run_tool(script: str, args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run tools/<script> in a subprocess, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / script), *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=timeout
    )
