"""Reading COCO results files: bad entries are errors naming the first offending entry."""
import json
import logging

import numpy as np
import pytest

from detframe.errors import UserError
from detframe.evaluation import GroundTruth, load_results

GT = {
    "images": [{"id": 4, "width": 50, "height": 50, "file_name": "000004.jpg"},
               {"id": 9, "width": 50, "height": 50, "file_name": "000009.jpg"}],
    "annotations": [{"id": 1, "image_id": 4, "category_id": 12, "bbox": [1, 2, 10, 10], "area": 100,
                     "iscrowd": 0}],
    "categories": [{"id": 12, "name": "cat"}, {"id": 30, "name": "dog"}],
}
GOOD = {"image_id": 4, "category_id": 12, "bbox": [1.0, 2.0, 10.0, 10.0], "score": 0.5}


def write(tmp_path, entries):
    path = tmp_path / "dets.json"
    if isinstance(entries, bytes):
        path.write_bytes(entries)
    else:
        path.write_text(json.dumps(entries) if not isinstance(entries, str) else entries)
    return path


def test_good_file_and_voc_style_image_names(tmp_path):
    preds = load_results(write(tmp_path, [GOOD, {**GOOD, "image_id": "000009", "category_id": 30}]),
                         GroundTruth.from_coco(GT))
    assert preds.image_id.tolist() == [4, 9] and preds.category_id.tolist() == [12, 30]
    np.testing.assert_array_equal(preds.bbox[0], [1, 2, 10, 10])


@pytest.mark.parametrize("change, message", [
    ({"image_id": 5}, "entry 2 .*image_id 5 is not an image of the evaluated set"),
    ({"category_id": 13}, "entry 2 .*category_id 13 is not a category of the dataset; "
                          "its categories: 12 \\(cat\\), 30 \\(dog\\)"),
    ({"bbox": [1.0, float("nan"), 3.0, 4.0]}, "entry 2 .*NaN"),
    ({"score": float("inf")}, "entry 2 .*NaN or infinity"),
    ({"bbox": [10, 10, -3, 4]}, "entry 2 .*negative width or height"),
    ({"bbox": [1, 2, 3]}, "entry 2 .*four numbers"),
    ({"score": None}, "entry 2 .*score must be a number, got None"),
    ({"score": "0.9"}, "entry 2 .*score must be a number, got '0.9'"),
    ({"image_id": 4.0}, "entry 2 .*image_id 4.0 is not an image"),
    ({"bbox": "1 2 3 4"}, "entry 2 .*four numbers"),
])
def test_first_bad_entry_is_named(tmp_path, change, message):
    entries = [GOOD, GOOD, {**GOOD, **change}, {**GOOD, "image_id": 77}]
    with pytest.raises(UserError, match=message):
        load_results(write(tmp_path, entries), GroundTruth.from_coco(GT))


@pytest.mark.parametrize("text, message", [
    ('{"a": 1}', "expected a JSON list"), ("[{", "not valid JSON"),
    ('[{"image_id": 4}]', "entry 0 .*missing category_id, bbox, score"),
    ("[3]", "entry 0 3: expected an object"),
    ("[]", "an empty list, no detection to evaluate"), ("  \n", "an empty file"),
    ("PK\x03\x04\xff\xfe", "not a JSON text file .*checkpoint=PATH"),
    (json.dumps(GT), "entry 0 .*missing score .*looks like a COCO ground-truth file"),
])
def test_malformed_files(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        load_results(write(tmp_path, text.encode("latin-1")), GroundTruth.from_coco(GT))
    with pytest.raises(UserError, match="results file not found"):
        load_results(tmp_path / "missing.json", GroundTruth.from_coco(GT))
    with pytest.raises(UserError, match="a folder, not a results file"):
        load_results(tmp_path, GroundTruth.from_coco(GT))


def test_scores_outside_0_1_and_repeated_entries_are_evaluated_with_a_warning(tmp_path, caplog):
    entries = [GOOD, {**GOOD, "score": 3.5}, {**GOOD, "score": -1}, GOOD, GOOD]
    with caplog.at_level(logging.WARNING):
        preds = load_results(write(tmp_path, entries), GroundTruth.from_coco(GT))
    assert len(preds) == 5
    assert "dets.json: 2 of 5 scores are outside [0, 1] (first: entry 1" in caplog.text
    assert "dets.json: 2 entries repeat an earlier one exactly (first: entry 3" in caplog.text
