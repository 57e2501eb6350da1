"""detframe.weights: reading files that are not checkpoints, and matching weights by name and shape."""
import pickle

import pytest
import torch
from torch import nn

from detframe.engine.checkpoint import load_checkpoint
from detframe.weights import WeightsError, load_weights_into, match_weights, read_torch_file


def small_net(classes: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, classes, 1))


def write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, data, message", [
    ("config.yaml", b"model: {type: SingleStageDetector}\n", "not a PyTorch checkpoint .*YAML or plain text"),
    ("dets.json", b'[{"image_id": 1}]', "not a PyTorch checkpoint .*JSON"),
    ("photo.jpg", b"\xff\xd8\xff\xe0" + bytes(100), "not a PyTorch checkpoint .*a JPEG image"),
    ("empty.pt", b"", "an empty file \\(0 bytes\\)"),
    ("notes.txt", "é".encode("latin-1") + bytes(50), "not a PyTorch checkpoint .*binary data"),
    ("old.pkl", pickle.dumps({"a": 1}, protocol=4), "not a readable PyTorch checkpoint"),
])
def test_a_file_that_is_not_a_checkpoint_is_named_with_what_it_looks_like(tmp_path, name, data, message):
    path = write(tmp_path / name, data)
    with pytest.raises(WeightsError, match=f"resume={path}: {message}") as info:
        load_checkpoint(path, "resume")
    assert "weights_only=False" not in str(info.value)


def test_truncated_folder_tensor_and_whole_module(tmp_path):
    torch.save({"model": small_net().state_dict()}, tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    with pytest.raises(WeightsError, match="damaged or truncated PyTorch checkpoint"):
        load_checkpoint(write(tmp_path / "cut.pt", data[: len(data) // 2]))
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    torch.save({}, tmp_path / "run" / "checkpoints" / "last.pt")
    with pytest.raises(WeightsError, match="a folder, not a checkpoint file; did you mean .*/last.pt"):
        load_checkpoint(tmp_path / "run")
    torch.save(torch.ones(2), tmp_path / "tensor.pt")
    with pytest.raises(WeightsError, match="holds a Tensor, not a checkpoint"):
        load_checkpoint(tmp_path / "tensor.pt")
    torch.save(small_net(), tmp_path / "module.pt")
    with pytest.raises(WeightsError, match="refused: .*torch.nn.modules.container.Sequential.*state_dict"):
        read_torch_file(tmp_path / "module.pt")


def test_strict_mismatch_is_one_line_with_counts_and_names():
    theirs = small_net(5).state_dict()
    theirs["extra.weight"] = torch.ones(1)
    del theirs["0.bias"]
    model = small_net(3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError) as info:
        load_weights_into(model, theirs, "checkpoint=x.pt", hint="Do this.")
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("checkpoint=x.pt: the weights do not fit the model: 1 of the model's 8 tensors "
                           "missing (0.bias), 1 unexpected (extra.weight), 2 of another shape "
                           "(2.weight: file [5, 4, 1, 1], model [3, 4, 1, 1]; 2.bias: file [5], model [3])")
    assert text.endswith(". Do this.")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing loaded


def test_counters_and_buffers_do_not_count_as_a_match():
    other = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm2d(4))  # only "1.*" BatchNorm names coincide
    model = small_net()
    match = match_weights(model, other.state_dict())
    assert match.counters == ["1.num_batches_tracked"] and match.params_loaded == 2  # BN weight, bias
    unrelated = {"1.num_batches_tracked": torch.tensor(5), "norm.mean": torch.zeros(3)}
    with pytest.raises(WeightsError, match="none of the model's 6 parameters is in the file"):
        load_weights_into(model, unrelated, "load_from=x.pt", strict=False)


def test_partial_load_fills_what_fits():
    source, model = small_net(5), small_net(3)
    match = load_weights_into(model, source.state_dict(), "load_from=x.pt", strict=False)
    assert match.reshaped and match.params_loaded == 4 and len(match.params) == 6
    assert torch.equal(model[0].weight, source[0].weight)
    assert not torch.equal(model[2].bias, source[2].bias[:3])
    assert "shape       2.weight: file [5, 4, 1, 1], model [3, 4, 1, 1]" in match.table()
