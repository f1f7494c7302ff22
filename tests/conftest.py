"""Shared test set-up: src/ on the path (as when a stage runs as `python src/<stage>.py`),
and one torch thread."""
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
sys.path.insert(0, str(SRC))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """On a busy 2-core machine, OpenMP contention makes tiny models ~100x slower.
    Results do not depend on the thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
