"""Fixtures shared by the whole test suite."""

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """Tiny tensors: one intra-op thread is much faster (and immune to a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
