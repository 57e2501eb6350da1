"""Overrides on a saved (resolved) run config, as eval / predict / export apply them to a checkpoint's:
`data.root=` and `pipeline.size=` reach the values their interpolations had filled in."""
import pytest
from omegaconf import OmegaConf

from detframe.config.saved import apply_overrides
from detframe.errors import ConfigError

from .conftest import compose


def saved(overrides):
    """What a checkpoint holds: the composed config with every interpolation resolved."""
    return OmegaConf.create(OmegaConf.to_container(compose(overrides), resolve=True))


def sizes(pipeline):
    return [(t["type"], t.get("size")) for t in pipeline]


def test_pipeline_size_resizes_the_transforms_that_followed_it():
    cfg = saved(["config=tal_cspnext_nano_raccoon", "data.root=/data/raccoon"])
    assert sizes(cfg.pipeline.val) == [("Letterbox", 256)]
    cfg = apply_overrides(cfg, ["pipeline.size=320"])
    assert cfg.pipeline.size == 320
    assert sizes(cfg.pipeline.val) == [("Letterbox", 320)]
    assert sizes(cfg.pipeline.train) == [("Resize", 320), ("Mosaic", 320), ("RandomAffine", 320),
                                         ("Albu", None), ("RandomHorizontalFlip", None), ("Letterbox", 320)]


def test_a_transform_at_its_own_size_keeps_it():
    cfg = saved(["config=tal_cspnext_nano_raccoon", "data.root=/data/raccoon",
                 "pipeline.train.1.size=224"])  # a Mosaic at 224 whatever pipeline.size says
    cfg = apply_overrides(cfg, ["pipeline.size=320"])
    assert sizes(cfg.pipeline.train)[:2] == [("Resize", 320), ("Mosaic", 224)]


def test_pipeline_size_as_height_and_width():
    cfg = saved(["config=tal_cspnext_nano_raccoon", "data.root=/data/raccoon", "pipeline.size=[256,320]"])
    cfg = apply_overrides(cfg, ["pipeline.size=[320, 384]"])
    assert OmegaConf.to_container(cfg.pipeline.val[0].size) == [320, 384]
    cfg = apply_overrides(cfg, ["pipeline.size=416"])
    assert cfg.pipeline.val[0].size == 416


def test_data_root_moves_the_paths_under_it():
    cfg = saved(["config=tal_cspnext_nano_raccoon", "data.root=/old/raccoon"])
    before = OmegaConf.to_container(cfg.data.val)
    cfg = apply_overrides(cfg, ["data.root=/new/place"])
    moved = [(k, v) for k, v in before.items() if isinstance(v, str) and v.startswith("/old/raccoon")]
    assert moved, before
    for k, v in moved:
        assert cfg.data.val[k] == "/new/place" + v[len("/old/raccoon"):]


def test_an_unknown_key_is_refused_with_the_valid_ones():
    cfg = saved(["config=tal_cspnext_nano_raccoon", "data.root=/data/raccoon"])
    with pytest.raises(ConfigError, match=r"unknown config key 'pipeline\.sise'.*size"):
        apply_overrides(cfg, ["pipeline.sise=320"])
