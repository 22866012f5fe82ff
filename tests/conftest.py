"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine OpenMP spin-waiting makes two threads far slower,
    and a short GAN run is only reproducible with one summation order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
