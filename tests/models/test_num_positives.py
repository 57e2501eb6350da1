"""The one positive count (`num_positives`, through detframe.dist) that replaced the torch.distributed
calls inside SSDHead.loss, and a check that no model code calls torch.distributed again."""
import ast
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from detframe.models.heads.base import num_positives

MODELS = Path(__file__).resolve().parents[2] / "detframe" / "models"


def uses_torch_distributed(source: str) -> bool:
    """Whether code (not a docstring or comment) imports or names torch.distributed."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name.startswith("torch.distributed") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (
            (node.module or "").startswith("torch.distributed")
            or (node.module == "torch" and any(a.name == "distributed" for a in node.names))
        ):
            return True
        torch_attribute = isinstance(node, ast.Attribute) and getattr(node.value, "id", "") == "torch"
        if torch_attribute and node.attr == "distributed":
            return True
    return False


def test_no_model_code_calls_torch_distributed():
    """Collectives go through detframe.dist (heads.base.num_positives), never from a head itself."""
    assert uses_torch_distributed("import torch\nif torch.distributed.is_initialized(): pass")
    offenders = [p.relative_to(MODELS) for p in MODELS.rglob("*.py") if uses_torch_distributed(p.read_text())]
    assert offenders == []


def test_num_positives_counts_and_clamps_in_one_process():
    three = torch.tensor([[True, False, True], [False, True, False]])
    assert num_positives(three).dtype == torch.float32 and num_positives(three).item() == 3.0
    assert num_positives(torch.zeros(2, 5, dtype=torch.bool)).item() == 1.0  # no object: no division by 0


CASES = [((2, 5), 3.5), ((0, 1), 1.0), ((0, 0), 1.0)]  # positives on ranks 0 and 1, expected count


def _rank(rank: int, init_file: str, out) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        out[rank] = [num_positives(torch.arange(10) < counts[rank]).item() for counts, _ in CASES]
    finally:
        dist.destroy_process_group()


def test_num_positives_is_the_mean_over_ranks_clamped_after(tmp_path):
    """2 gloo processes: the mean over ranks, clamped after the reduction (0 and 1 give 1, not 0.5)."""
    out = mp.Manager().dict()
    mp.spawn(_rank, args=(str(tmp_path / "init"), out), nprocs=2, join=True)
    expected = [e for _, e in CASES]
    assert dict(out) == {0: expected, 1: expected}
