"""detframe installs like a library: a wheel built from the clone, installed into a fresh virtual
environment outside it, finds its config tree through package resources and trains from there."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO


def run(args: list, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))}:\n{(result.stdout + result.stderr)[-4000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding only the detframe wheel. Its dependencies come from this interpreter's
    site-packages through a .pth line (paths only: the editable install's finder there is not loaded),
    so the test needs no network; `pip install -e .[dev]` already showed that they resolve."""
    root = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist",
         REPO], cwd=root)
    wheel = next((root / "dist").glob("detframe-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "detframe/configs/train.yaml" in names
    assert "detframe/configs/experiment/ssdlite_shapes.yaml" in names
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root)
    python = venv / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=root).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_detframe_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel], cwd=root)
    return venv


@pytest.mark.slow
def test_wheel_installs_and_trains_outside_the_clone(installed, tmp_path):
    bin_dir = installed / "bin"
    where = run([bin_dir / "python", "-c",
                 "import detframe.config as c; print(c.__file__); print(c.config_dir())"],
                cwd=tmp_path).stdout.split()
    assert all(str(installed) in line and str(REPO) not in line for line in where)
    job = run([bin_dir / "detframe-train", "--cfg", "job"], cwd=tmp_path).stdout
    assert "experiment_name: ssdlite_shapes" in job
    assert "experiment_name: ssdlite_shapes" in run(
        [bin_dir / "python", "-m", "detframe", "train", "--cfg", "job"], cwd=tmp_path).stdout
    data = tmp_path / "shapes"
    run([bin_dir / "python", "-c",
         f"from detframe.data import ensure_shapes; ensure_shapes('{data}', 8, 4, seed=1)"], cwd=tmp_path)
    run([bin_dir / "detframe-train", f"data.root={data}", "model.backbone.arch=small", "pipeline.size=96",
         "data.batch_size=4", "data.num_workers=0", "train.max_iters=2", "hooks.progress=null",
         "hydra.run.dir=run"], cwd=tmp_path)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "run" / "train.log").is_file()
    report = run([bin_dir / "detframe-eval", "checkpoint=run/checkpoints/last.pt", "plots=false"],
                 cwd=tmp_path).stdout
    assert "coco/AP" in report
