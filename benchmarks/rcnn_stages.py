"""Faster / Mask R-CNN stage by stage against torchvision's: where each side spends its time outside the
backbone and FPN they share.

    python benchmarks/rcnn_stages.py                                  # Faster R-CNN, 512 px, batch 2
    python benchmarks/rcnn_stages.py --rounds 15 --stages "roialign fwd+bwd train"

The pair of models and the inputs are benchmarks/models.py's (`make_pair`: the same weights;
`make_inputs`: the same images and boxes). The backbone and FPN run once; each stage then runs on those
features, ours and torchvision's alternating round by round (`alternate`: the median of the per-round
ratios ours / torchvision with a 95% bootstrap interval), one thread by default. Each side uses its own
proposals and sampled RoIs, which are the same sets (tests/models/test_rcnn_equivalence.py checks the
proposals; both samplers draw with torch's RNG, seeded alike here). The stages:

- rpn conv+flatten: the RPN's 3x3 conv and 1x1 outputs on every level, flattened to [B, P, K].
- rpn targets+loss: anchors, matching, sampling 256 per image, `loss_rpn_*` (torchvision: its anchor
  generator, `assign_targets_to_anchors`, `encode`, `compute_loss`).
- proposals train / test: decode, top-k per level, clip, small boxes, NMS per level (2000 / 1000).
- roi sampling: the objects added, matching, 512 RoIs per image.
- roialign fwd+bwd train: the sampled RoIs pooled 7x7 from P2-P5 and the gradient back to the maps.
- box head+loss fwd+bwd: two FC layers, class and box outputs, their losses and backward.
- roialign test, box head test: the same on the test proposals, without gradient.
- postprocess test: softmax, per-class boxes, score threshold, NMS, 100 per image, original pixels.
- normalize/transform: ours `normalize` of the uint8 batch; torchvision's transform (normalise, resize
  even at the same size, batch).

With `--model maskrcnn_resnet50_fpn` the same stages run on Mask R-CNN's box branch; its mask branch is
not among them.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import OrderedDict
from collections.abc import Callable
from types import SimpleNamespace

import torch
from torchvision.models.detection import roi_heads as tv_roi_heads
from torchvision.models.detection.rpn import concat_box_prediction_layers

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from models import alternate, make_inputs, make_pair  # noqa: E402

from detframe.models.roi_heads.bbox_head import box_head_losses, sample_rois  # noqa: E402
from detframe.models.roi_heads.standard import decode_per_class, detections  # noqa: E402

SIZE = 512


def prepare(arch: str) -> SimpleNamespace:
    """Both models, their features (eval mode, no gradient), and each side's proposals, sampled RoIs,
    pooled features and box-head outputs, computed once for the stages to start from."""
    theirs, ours = make_pair(arch, torch.device("cpu"))
    batch, images, targets = make_inputs(SIZE, 2, torch.device("cpu"), masks=ours.requires_masks)
    c = SimpleNamespace(ours=ours, theirs=theirs, batch=batch, images=images, size=batch.images.shape[-2:])
    with torch.no_grad():
        ours.eval(), theirs.eval()
        c.image_list, c.tv_targets = theirs.transform(images, targets)
        c.features, c.tv_features = ours(batch.images), theirs.backbone(c.image_list.tensors)
        set_mode(c, True)
        c.rpn_out = ours.rpn_head(c.features)
        c.tv_rpn_out = tv_rpn_head(c)
        c.proposals = ours.rpn_head.proposals(c.rpn_out, batch.image_sizes, c.size)
        c.tv_proposals = tv_proposals(c)
        torch.manual_seed(0)
        c.samples = sample_rois(c.proposals, batch.targets, ours.roi_head.assigner, ours.roi_head.sampler)
        torch.manual_seed(0)
        c.tv_rois, _, c.tv_labels, c.tv_regression = theirs.roi_heads.select_training_samples(
            list(c.tv_proposals), c.tv_targets)
        c.pooled = ours.roi_head.roi_extractor(c.features, c.samples.rois)
        c.tv_pooled = theirs.roi_heads.box_roi_pool(c.tv_features, c.tv_rois, c.image_list.image_sizes)
        set_mode(c, False)
        c.test_proposals = ours.rpn_head.proposals(c.rpn_out, batch.image_sizes, c.size)
        c.tv_test_proposals = tv_proposals(c)
        c.test_pooled = ours.roi_head.roi_extractor(c.features, c.test_proposals)
        c.tv_test_pooled = theirs.roi_heads.box_roi_pool(c.tv_features, c.tv_test_proposals,
                                                         c.image_list.image_sizes)
        c.box_out = ours.roi_head.bbox_head(c.test_pooled)
        c.tv_box_out = tv_box_head(c, c.tv_test_pooled)
    return c


def set_mode(c: SimpleNamespace, train: bool) -> None:
    c.ours.train(train)
    c.theirs.train(train)


def tv_rpn_head(c: SimpleNamespace) -> tuple:
    """torchvision's RPN head on every level, flattened as its RPN does: (objectness, deltas, counts)."""
    objectness, deltas = c.theirs.rpn.head(list(c.tv_features.values()))
    counts = [o[0].numel() for o in objectness]
    return (*concat_box_prediction_layers(objectness, deltas), counts)


def tv_proposals(c: SimpleNamespace) -> list[torch.Tensor]:
    rpn, (objectness, deltas, counts) = c.theirs.rpn, c.tv_rpn_out
    anchors = rpn.anchor_generator(c.image_list, list(c.tv_features.values()))
    boxes = rpn.box_coder.decode(deltas.detach(), anchors).view(len(anchors), -1, 4)
    return rpn.filter_proposals(boxes, objectness.detach(), c.image_list.image_sizes, counts)[0]


def tv_rpn_loss(c: SimpleNamespace) -> tuple:
    rpn, (objectness, deltas, _) = c.theirs.rpn, c.tv_rpn_out
    anchors = rpn.anchor_generator(c.image_list, list(c.tv_features.values()))
    labels, matched = rpn.assign_targets_to_anchors(anchors, c.tv_targets)
    return rpn.compute_loss(objectness, deltas, labels, rpn.box_coder.encode(matched, anchors))


def tv_box_head(c: SimpleNamespace, pooled: torch.Tensor) -> tuple:
    heads = c.theirs.roi_heads
    return heads.box_predictor(heads.box_head(pooled))


def with_grad(features: list[torch.Tensor]) -> list[torch.Tensor]:
    return [f.detach().clone().requires_grad_() for f in features]


def stages(c: SimpleNamespace) -> dict[str, tuple[bool, bool, Callable, Callable]]:
    """name -> (train mode, gradient on, ours, torchvision's)."""
    ours, head, tv_heads, batch = c.ours, c.ours.roi_head, c.theirs.roi_heads, c.batch
    sizes = c.image_list.image_sizes

    def proposals() -> list:
        return ours.rpn_head.proposals(c.rpn_out, batch.image_sizes, c.size)

    def roi_sampling() -> object:
        return sample_rois(c.proposals, batch.targets, head.assigner, head.sampler)

    def roialign_train() -> None:
        head.roi_extractor(with_grad(c.features), c.samples.rois).sum().backward()

    def tv_roialign_train() -> None:
        features = OrderedDict(zip(c.tv_features, with_grad(list(c.tv_features.values()))))
        tv_heads.box_roi_pool(features, c.tv_rois, sizes).sum().backward()

    def box_train() -> None:
        logits, deltas = head.bbox_head(c.pooled.detach().requires_grad_())
        sum(box_head_losses(logits, deltas, c.samples, head.coder, head.loss_cls, head.loss_box)).backward()

    def tv_box_train() -> None:
        logits, deltas = tv_box_head(c, c.tv_pooled.detach().requires_grad_())
        sum(tv_roi_heads.fastrcnn_loss(logits, deltas, c.tv_labels, c.tv_regression)).backward()

    def postprocess() -> list:
        logits, deltas = c.box_out
        scores, counts = torch.softmax(logits, dim=1)[:, 1:], [len(p) for p in c.test_proposals]
        return [detections(head, batch, i, s, decode_per_class(head.coder, rois, d)) for i, (rois, s, d)
                in enumerate(zip(c.test_proposals, scores.split(counts), deltas.split(counts)))]

    def tv_postprocess() -> list:
        boxes, scores, labels = tv_heads.postprocess_detections(*c.tv_box_out, c.tv_test_proposals, sizes)
        found = [{"boxes": b, "scores": s, "labels": lab} for b, s, lab in zip(boxes, scores, labels)]
        return c.theirs.transform.postprocess(found, sizes, [(SIZE, SIZE)] * len(found))

    return {
        "rpn conv+flatten": (True, False, lambda: ours.rpn_head(c.features), lambda: tv_rpn_head(c)),
        "rpn targets+loss": (True, False, lambda: ours.rpn_head.loss(c.rpn_out, batch.targets, c.size),
                             lambda: tv_rpn_loss(c)),
        "proposals train": (True, False, proposals, lambda: tv_proposals(c)),
        "proposals test": (False, False, proposals, lambda: tv_proposals(c)),
        "roi sampling": (True, False, roi_sampling,
                         lambda: tv_heads.select_training_samples(list(c.tv_proposals), c.tv_targets)),
        "roialign fwd+bwd train": (True, True, roialign_train, tv_roialign_train),
        "box head+loss fwd+bwd": (True, True, box_train, tv_box_train),
        "roialign test": (False, False, lambda: head.roi_extractor(c.features, c.test_proposals),
                          lambda: tv_heads.box_roi_pool(c.tv_features, c.tv_test_proposals, sizes)),
        "box head test": (False, False, lambda: head.bbox_head(c.test_pooled),
                          lambda: tv_box_head(c, c.tv_test_pooled)),
        "postprocess test": (False, False, postprocess, tv_postprocess),
        "normalize/transform": (False, False, lambda: ours.normalize(batch.images),
                                lambda: c.theirs.transform(c.images)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fasterrcnn_resnet50_fpn",
                        choices=["fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn"])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stages", nargs="+", help="names of the stages to time (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    c = prepare(args.model)
    table = stages(c)
    print(f"{args.model}, {args.threads} thread(s): {len(c.samples.labels)} / {sum(map(len, c.tv_labels))} "
          f"training RoIs, {sum(map(len, c.test_proposals))} / {sum(map(len, c.tv_test_proposals))} test "
          f"proposals (ours / torchvision)", flush=True)
    for name in args.stages or table:
        train, grad, mine, reference = table[name]

        def run(fn: Callable, train: bool = train, grad: bool = grad) -> Callable[[], None]:
            def timed() -> None:
                set_mode(c, train)
                with torch.set_grad_enabled(grad):
                    fn()
            return timed

        ours, theirs = run(mine), run(reference)
        ours(), theirs()  # warm-up
        s = alternate(theirs, ours, args.rounds, torch.device("cpu"))
        print(f"  {name:24s} ours {s['second'] * 1e3:8.1f} ms  torchvision {s['first'] * 1e3:8.1f} ms  "
              f"ratio {s['paired']:.3f} ({s['low']:.3f}-{s['high']:.3f})", flush=True)


if __name__ == "__main__":
    main()
