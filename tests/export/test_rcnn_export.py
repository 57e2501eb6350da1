"""tools/export.py refuses a two-stage detector (no traceable `decode`: its proposals and RoIs vary in number
per image) with one line naming the checkpoint."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from ..badinput.helpers import assert_fails, run_main
from ..conftest import compose


@pytest.mark.parametrize("model", [
    ["model=faster_rcnn_r18_fpn", "model.neck.out_channels=32", "model.roi_head.fc_channels=32"],
    ["model=rfcn_r18", "model.roi_head.hidden_channels=32"],
], ids=["faster_rcnn", "rfcn"])
def test_export_refuses_a_two_stage_checkpoint(model, tiny_shapes, tmp_path):
    from detframe.engine import save_checkpoint
    from detframe.models import build_detector

    cfg = compose([f"data.root={tiny_shapes}", *model])
    state = {"model": build_detector(cfg.model).state_dict(), "config": OmegaConf.to_yaml(cfg, resolve=True)}
    checkpoint = save_checkpoint(state, tmp_path / "rcnn.pt")
    out = assert_fails(run_main("export", [f"checkpoint={checkpoint}"], tmp_path), f"checkpoint={checkpoint}",
                       "a TwoStageDetector cannot be exported")
    assert len([line for line in out.splitlines() if "error:" in line]) == 1
