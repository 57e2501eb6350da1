"""Predicted and ground-truth instance masks in what people look at: predict's drawn images and
predictions.json (an RLE `segmentation` per detection), the dataset browser's pictures and the val
images of TensorBoard."""
import json

import numpy as np
import torch
from pycocotools import mask as mask_utils

from detframe.data.collate import Collate
from detframe.inference.outputs import PredictionWriter
from detframe.inference.results import Prediction
from detframe.structures import Detections, Sample
from detframe.vis import draw_sample, draw_val_images


def masked_prediction(with_masks=True):
    masks = np.zeros((2, 30, 40), bool)
    masks[0, 5:15, 5:20] = True
    masks[1, 18:28, 25:38] = True
    return Prediction(boxes=np.array([[5, 5, 20, 15], [25, 18, 38, 28]], np.float32),
                      scores=np.array([0.9, 0.6], np.float32), labels=np.array([0, 1]),
                      class_names=["a", "b"], image_size=(30, 40), source="x.png",
                      image=np.full((30, 40, 3), 128, np.uint8), masks=masks if with_masks else None)


def test_predictions_json_gets_an_rle_per_detection(tmp_path):
    pred = masked_prediction()
    writer = PredictionWriter(tmp_path, save_images=True, save_json=True, save_txt=False,
                              save_per_image_json=False)
    writer.add(pred, tmp_path / "x.png", image_id=0)
    writer.finish()
    entries = json.loads((tmp_path / "predictions.json").read_text())
    decoded = [mask_utils.decode({**e["segmentation"], "counts": e["segmentation"]["counts"].encode()})
               for e in entries]
    np.testing.assert_array_equal(np.stack(decoded).astype(bool), pred.masks)
    plain = masked_prediction(with_masks=False).to_json()
    assert "segmentation" not in plain["detections"][0]


def test_drawn_masks_fill_inside_only():
    with_masks, without = masked_prediction().draw(), masked_prediction(with_masks=False).draw()
    inside = with_masks[21:26, 28:35] != without[21:26, 28:35]  # mask 1, away from its tag
    assert inside.any() and (with_masks[0:3, 25:40] == without[0:3, 25:40]).all()


def test_browser_and_val_images_draw_ground_truth_and_predicted_masks():
    masks = np.zeros((1, 32, 32), np.uint8)
    masks[0, 4:20, 4:20] = 1
    sample = Sample(np.zeros((32, 32, 3), np.uint8), [[4, 4, 20, 20]], [0], 0, (32, 32), masks=masks)
    picture = draw_sample(sample, ["thing"])
    assert picture[10, 10].any() and not picture[28, 28].any()

    class Model(torch.nn.Module):
        def predict(self, batch):
            m = torch.zeros((1, 32, 32), dtype=torch.bool)
            m[0, 22:30, 22:30] = True
            return [Detections(torch.tensor([[22.0, 22, 30, 30]]), torch.tensor([0.9]), torch.tensor([0]), m)]

    class Data:
        class_names = ["thing"]

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return sample

        def load_sample(self, i):
            return sample

    loader = type("L", (), {"dataset": Data(), "collate_fn": Collate()})()
    image = draw_val_images(Model(), loader, torch.device("cpu"), 1, 0.5)[0]
    assert image[:, 10, 10].any() and image[:, 26, 26].any() and not image[:, 2, 28].any()
