"""Opt-in pytest plugin: each test's CPU time (`-p tests.cputime`, with the clone on PYTHONPATH).

On a shared machine wall time (`--durations`) grows with everyone else's load; the CPU time of the test
process (all its threads) moves far less, so it is what a test's budget is compared against there.
"""
from __future__ import annotations

import time

import pytest

_times: dict[str, tuple[float, float]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Setup, call and teardown of one test, module-scoped fixtures built for it included."""
    cpu, wall = time.process_time(), time.perf_counter()
    yield
    _times[item.nodeid] = (time.process_time() - cpu, time.perf_counter() - wall)


def pytest_terminal_summary(terminalreporter) -> None:
    terminalreporter.write_sep("=", "CPU seconds per test (>= 0.5 s), slowest first: cpu, wall")
    for nodeid, (cpu, wall) in sorted(_times.items(), key=lambda item: -item[1][0]):
        if cpu >= 0.5:
            terminalreporter.write_line(f"{cpu:7.1f} {wall:8.1f}  {nodeid}")
    total_cpu, total_wall = (sum(t[i] for t in _times.values()) for i in (0, 1))
    terminalreporter.write_line(f"{total_cpu:7.1f} {total_wall:8.1f}  all {len(_times)} tests")
