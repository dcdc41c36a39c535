"""reuse_freed_memory: large freed blocks are handed out again instead of being mapped afresh."""

import contextlib
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from napari_volumenet import _allocator, inference
from napari_volumenet.models import create_model

MIB = 2**20


def _in_a_fresh_process(script: str, *args: str) -> str:
    """The standard output of ``script`` run in a process of its own, on glibc's defaults: the allocator's settings
    and heap are process-wide, whatever earlier tests left, and an environment may tune them or preload another
    allocator."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("MALLOC_") and name not in ("GLIBC_TUNABLES", "LD_PRELOAD")}
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True,
                          env=env).stdout


_MEASURE = """
import mmap, resource, threading, torch
from napari_volumenet import _allocator

MIB = 2**20


def faults_of_writing_fresh_pages():
    fresh = mmap.mmap(-1, 40 * MIB)  # an anonymous mapping, never touched
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for page in range(0, 40 * MIB, 4096):
        fresh[page] = 1
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def faults_of_reusing_a_freed_block():
    first = torch.ones(48 * MIB // 4)  # under a thread arena's largest heap (64 MiB)
    second = torch.ones(48 * MIB // 4)
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(40 * MIB // 4)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del second
    return faults


def in_a_thread(measure):
    out = []
    worker = threading.Thread(target=lambda: out.append(measure()))
    worker.start()
    worker.join()
    return out[0]


def reused_inside():
    with _allocator.reuse_freed_memory():
        return faults_of_reusing_a_freed_block()


print(faults_of_writing_fresh_pages(), reused_inside(), faults_of_reusing_a_freed_block(),
      in_a_thread(reused_inside), in_a_thread(faults_of_reusing_a_freed_block))
"""


@pytest.mark.skipif(_allocator._GLIBC is None, reason="needs Linux with glibc")
def test_a_freed_block_is_reused_inside_the_context_and_mapped_afresh_outside_in_any_thread():
    calibration, reused, fresh, reused_in_thread, fresh_in_thread = map(int, _in_a_fresh_process(_MEASURE).split())
    pages = 40 * MIB // 4096
    if calibration < pages // 2:
        pytest.skip(f"this machine does not count minor page faults ({calibration} for {pages} fresh pages)")
    assert reused < pages // 10 < pages // 2 < fresh
    assert reused_in_thread < pages // 10 < pages // 2 < fresh_in_thread  # the widget computes in a worker thread


_AFTER = """
import resource, numpy as np
from napari_volumenet import _allocator

MIB = 2**20
with _allocator.reuse_freed_memory():  # sets glibc's thresholds, which stops their sliding for good
    pass
np.ones(16 * MIB // 8)  # a temporary (a metric's, the writer's): freed at once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(16 * MIB // 8)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(_allocator._GLIBC is None, reason="needs Linux with glibc")
def test_after_the_context_a_freed_temporary_is_reused_as_glibc_itself_would():
    pages = 16 * MIB // 4096
    assert int(_in_a_fresh_process(_AFTER)) < pages // 10  # mapped afresh (4,096 faults) when the threshold stayed at 128 KiB


_STEPS = """
import resource, sys, numpy as np
from napari_volumenet import _allocator

MIB = 2**20
_allocator.keep_heap_until_exit()  # the command line: glibc's sliding threshold stops at 128 KiB
if sys.argv[1] == "settled":
    _allocator.settle_mmap_threshold()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):  # a fit's steps: the same mid-sized temporaries again and again
    np.ones(4 * MIB // 8)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(_allocator._GLIBC is None, reason="needs Linux with glibc")
def test_a_settled_threshold_reuses_the_blocks_of_every_step_in_the_command_line():
    faults = {mode: int(_in_a_fresh_process(_STEPS, mode)) for mode in ("frozen", "settled")}
    pages = 4 * MIB // 4096
    assert faults["settled"] < pages  # the block faulted in once, then reused (~500 here)
    assert 4 * faults["settled"] < faults["frozen"]  # against mapped afresh at each of the 8 steps (~4,100 here)


def test_the_fast_engine_runs_inside_the_context(monkeypatch):
    entered = []

    @contextlib.contextmanager
    def recording(trim=True):
        entered.append(trim)
        yield

    monkeypatch.setattr(inference, "reuse_freed_memory", recording)
    volume = np.zeros((6, 6, 6), dtype=np.float32)
    parts = 6  # one window of a D3 network runs in its 6 blocks, each inside the context (never across a yield)
    inference.upscale(volume, create_model("volumenet", depth=3, channels=4), device="cpu")
    assert entered == [False] * parts  # the generator trims once at its end instead
    for model, engine in ((create_model("volumenet", depth=3, channels=4), "reference"),
                          (create_model("dcsrn", growth=2, units=2), "fast")):
        inference.upscale(volume, model, device="cpu", engine=engine)
    assert entered == [False] * parts  # plain forward passes (growing concatenations) keep glibc's defaults
    for block in ("mobilenetv2", "lwv1", "lwv2"):
        inference.upscale(volume, create_model("parallelnet", depth=3, channels=4, block=block), device="cpu")
    assert entered == [False] * parts  # feature maps that widen with the branch: a heap would grow by their sum
    for block in ("conv", "xception", "cpd", "queue"):
        inference.upscale(volume, create_model("parallelnet", depth=3, channels=4, block=block), device="cpu")
    assert entered == [False] * 5 * parts


def test_a_paused_or_closed_generator_holds_no_process_wide_setting(monkeypatch):
    trims = []
    monkeypatch.setattr(inference, "trim_heap", lambda: trims.append(True))
    volume = np.zeros((12, 12, 12), dtype=np.float32)
    steps = inference.upscale_steps(volume, create_model("volumenet", depth=3, channels=4), device="cpu", tile=4)
    assert next(steps)[1] > 1
    assert _allocator._depth == 0
    assert not trims
    steps.close()
    assert trims == [True]


def test_the_context_is_reentrant_and_restores_on_the_outermost_exit():
    with _allocator.reuse_freed_memory():
        with _allocator.reuse_freed_memory():
            inner = _allocator._depth
        middle = _allocator._depth
    expected = (2, 1) if _allocator._GLIBC is not None else (0, 0)
    assert (inner, middle, _allocator._depth) == (*expected, 0)


def test_threads_share_the_settings_until_the_last_one_leaves():
    inside, leave = threading.Event(), threading.Event()
    depths = []

    def run():
        with _allocator.reuse_freed_memory():
            depths.append(_allocator._depth)
            inside.set()
            leave.wait()

    worker = threading.Thread(target=run)
    worker.start()
    inside.wait()
    with _allocator.reuse_freed_memory():
        depths.append(_allocator._depth)
    depths.append(_allocator._depth)  # the worker is still inside
    leave.set()
    worker.join()
    expected = [1, 2, 1] if _allocator._GLIBC is not None else [0, 0, 0]
    assert (depths, _allocator._depth) == (expected, 0)


_PREFAULT = """
import resource, threading, torch
from napari_volumenet import _allocator

MIB = 2**20


def faults_of_filling(megabytes):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with _allocator.reuse_freed_memory():
        block = torch.ones(megabytes * MIB // 4)
    return block, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


_allocator.keep_heap_until_exit()
start = _allocator._reserve(200 * MIB)
_allocator._fault_in(start, 200 * MIB, threading.Event())  # what the thread does, to its end
first, prefaulted = faults_of_filling(160)
second, fresh = faults_of_filling(160)  # the first still holds most of what was faulted in
print(prefaulted, fresh)
"""


@pytest.mark.skipif(_allocator._GLIBC is None, reason="needs Linux with glibc")
def test_heap_faulted_in_ahead_is_what_the_next_large_blocks_get():
    prefaulted, fresh = map(int, _in_a_fresh_process(_PREFAULT).split())
    pages = 160 * MIB // 4096
    if fresh < pages // 2:
        pytest.skip(f"this machine does not count minor page faults ({fresh} for {pages} fresh pages)")
    assert prefaulted < pages // 10 < pages // 2 < fresh


def test_heap_is_faulted_in_ahead_only_for_a_process_that_keeps_it(monkeypatch):
    reserved = []
    monkeypatch.setattr(_allocator, "_reserve", lambda nbytes: reserved.append(nbytes))
    with _allocator.prefault_heap(64 * MIB):  # trimming still on: a freed reservation would go straight back
        pass
    assert reserved == []
    monkeypatch.setattr(_allocator, "_trim_threshold", _allocator._NO_TRIM)
    with _allocator.prefault_heap(0):
        pass
    with _allocator.prefault_heap(64 * MIB):
        pass
    assert reserved == ([64 * MIB] if _allocator._GLIBC is not None else [])


def test_the_prefaulting_thread_stops_when_the_block_ends(monkeypatch):
    chunks, first = [], threading.Event()

    class Kernel:  # records the chunks it is asked to fault in instead of touching memory
        @staticmethod
        def madvise(address, length, advice):
            chunks.append((address, length, advice))
            first.set()
            return 0

    monkeypatch.setattr(_allocator, "_trim_threshold", _allocator._NO_TRIM)
    monkeypatch.setattr(_allocator, "_GLIBC", Kernel())
    monkeypatch.setattr(_allocator, "_reserve", lambda nbytes: 1 << 40)
    before = threading.active_count()
    with _allocator.prefault_heap(10**6 * _allocator.PREFAULT_CHUNK):  # far more than it can do in the block
        assert first.wait(timeout=30)
    assert threading.active_count() == before
    assert 1 <= len(chunks) < 10**5
    assert chunks[0] == (1 << 40, _allocator.PREFAULT_CHUNK, 23)
    assert all(b[0] - a[0] == _allocator.PREFAULT_CHUNK for a, b in zip(chunks, chunks[1:]))


def test_a_process_that_keeps_its_heap_never_trims_it():
    code = ("from napari_volumenet import _allocator as a\n"
            "trims = []\n"
            "a._GLIBC = type('G', (), {'malloc_trim': lambda self, pad: trims.append(pad), "
            "'mallopt': lambda self, *args: 1})()\n"
            "a.trim_heap()\n"
            "a.keep_heap_until_exit()\n"
            "a.trim_heap()\n"
            "with a.reuse_freed_memory():\n"
            "    pass\n"
            "print(len(trims))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["1"]  # the first trim only: after keep_heap_until_exit, none
