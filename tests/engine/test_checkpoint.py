import pytest
import torch

from detframe.engine.checkpoint import load_checkpoint, save_checkpoint
from detframe.errors import UserError


def test_round_trip_and_weights_only(tmp_path):
    path = save_checkpoint({"model": {"w": torch.ones(2)}, "epoch": 3, "config": "a: 1\n"},
                           tmp_path / "ckpt" / "last.pt")
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    path = save_checkpoint({"epoch": 1}, tmp_path / "last.pt")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"epoch": 2, "bad": Unpicklable()}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_checkpoint_cannot_run_code(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(UserError, match=r"evil.pt: refused: it holds pickled Python objects \(print\)"):
        load_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out
    with pytest.raises(UserError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
