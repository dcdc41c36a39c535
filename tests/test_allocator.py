"""reuse_freed_memory: large freed blocks are handed out again instead of being mapped afresh."""

import contextlib
import resource
import threading

import numpy as np
import pytest
import torch

from napari_volumenet import _allocator, inference
from napari_volumenet.models import create_model

MIB = 2**20


def _page_faults_of_reusing_a_freed_block() -> int:
    """Free a 64 MiB block in the middle of the others, then allocate and write 40 MiB."""
    first = torch.ones(64 * MIB // 4)
    second = torch.ones(64 * MIB // 4)
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(40 * MIB // 4)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del second
    return faults


@pytest.mark.skipif(_allocator._GLIBC is None, reason="needs Linux with glibc")
def test_a_freed_block_is_reused_inside_the_context_and_mapped_afresh_outside():
    pages = 40 * MIB // 4096
    with _allocator.reuse_freed_memory():
        reused = _page_faults_of_reusing_a_freed_block()
    fresh = _page_faults_of_reusing_a_freed_block()
    assert reused < pages // 10 < pages // 2 < fresh


def test_the_fast_engine_runs_inside_the_context(monkeypatch):
    entered = []

    @contextlib.contextmanager
    def recording():
        entered.append(True)
        yield

    monkeypatch.setattr(inference, "reuse_freed_memory", recording)
    volume = np.zeros((6, 6, 6), dtype=np.float32)
    inference.upscale(volume, create_model("volumenet", depth=3, channels=4), device="cpu")
    assert entered == [True]
    for model, engine in ((create_model("volumenet", depth=3, channels=4), "reference"),
                          (create_model("dcsrn", growth=2, units=2), "fast")):
        inference.upscale(volume, model, device="cpu", engine=engine)
    assert entered == [True]  # plain forward passes (growing concatenations) keep glibc's defaults


def test_the_context_is_reentrant_and_restores_on_the_outermost_exit():
    with _allocator.reuse_freed_memory():
        with _allocator.reuse_freed_memory():
            inner = _allocator._depth
        middle = _allocator._depth
    expected = (2, 1) if _allocator._GLIBC is not None else (0, 0)
    assert (inner, middle, _allocator._depth) == (*expected, 0)


def test_other_threads_are_left_alone():
    depths = []

    def run():
        with _allocator.reuse_freed_memory():
            depths.append(_allocator._depth)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert depths == [0]
