import pytest
import torch


@pytest.fixture(autouse=True)
def restore_torch_flags():
    """runtime.deterministic switches process-wide torch flags; give the next test the defaults back."""
    algorithms, benchmark = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    yield
    torch.use_deterministic_algorithms(algorithms)
    torch.backends.cudnn.benchmark = benchmark
