"""The Python `Detector` API's own settings."""


def test_threshold_overrides_reach_a_two_stage_models_roi_head():
    """`score_threshold` / `max_detections` go to the head that makes the detections: `model.head` of a
    one-stage model, `model.roi_head` of a two-stage one (its RPN's settings concern proposals)."""
    from omegaconf import OmegaConf

    from detframe.inference.predictor import _head_overrides

    one = OmegaConf.create({"model": {"head": {"score_threshold": 0.05, "max_detections": 100}}})
    two = OmegaConf.create({"model": {"rpn_head": {"nms_iou": 0.7},
                                      "roi_head": {"score_threshold": 0.05, "max_detections": 100}}})
    assert _head_overrides(one, 0.3, None) == ["model.head.score_threshold=0.3"]
    assert _head_overrides(two, 0.3, 7) == [
        "model.roi_head.score_threshold=0.3", "model.roi_head.max_detections=7"]
