import pytest
import torch


@pytest.fixture(autouse=True)
def restore_torch_flags():
    """runtime.deterministic switches process-wide torch flags; give the next test the defaults back."""
    algorithms, benchmark = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    yield
    torch.use_deterministic_algorithms(algorithms)
    torch.backends.cudnn.benchmark = benchmark


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these tiny models gain little from two, and on a busy machine two OpenMP
    threads that spin-wait for each other were measured 40x slower (4 iterations: 43 s vs 1 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
