"""Fixtures of the metric tests."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """torch on one thread: on a 2-core CPU shared with another job, the 2-thread pool made tiny per-resample
    operations 20-50 times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
