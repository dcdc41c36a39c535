"""Reuse freed CPU memory while a volume is upscaled, instead of asking the kernel for fresh pages.

glibc serves every block above its mmap threshold (32 MiB at most) with a new ``mmap`` and unmaps it
on ``free``, so each ``(C, D, H, W)`` feature map of a large tile is paid for with one page fault per
4 KiB the first time it is written. For VolumeNet D9C32 on a 125×125×75 volume that was 5.6 M page
faults and 40 % of the CPU time, all of it in the kernel. Inside :func:`reuse_freed_memory` large
blocks come from the heap and freed ones are handed out again (0.8 M faults, 1.5× less CPU time,
peak memory +25 % from the heap's fragmentation); on exit the usual settings come back and
:func:`trim_heap` returns the free memory to the system, so the process does not keep its peak.
The settings are process-wide, so hold the context only while computing: a generator keeps it
per step and trims once at its end (``trim=False``, then :func:`trim_heap`).

Only worth it where the same block sizes come back (the fast engine's feature maps): a sequence of
ever larger blocks, as DenseNet-style concatenations make, cannot reuse what was freed and the heap
grows by their sum (an mDCSRN evaluation reached 21 GB this way).

The settings hold for every thread (the napari widget computes in a worker thread: VolumeNet D9C32 on the
MRI sample 2.1–2.4 s without them, 1.4–1.6 s with them, as in the main thread), with one limit: another
thread's arena grows in heaps of at most :data:`THREAD_HEAP_BYTES`, so a larger block is mapped afresh there
whatever the settings. Only on Linux with glibc; elsewhere the context does nothing.

A process that is about to exit (the ``volumenet`` command) calls :func:`keep_heap_until_exit`: trimming
gigabytes it would free a moment later anyway, and faulting them in again for its next file, only costs time.
It can then also fault its heap in ahead of time on an idle core (:func:`prefault_heap`): the kernel's ~0.6 µs
per 4 KiB page (zeroing it, mapping it) then falls while PyTorch is still being imported on one core, not on both
cores' time while the network runs (VolumeNet D9C32 on a 120×120×80 window: 3.8 s without faults, 4.6 s with).
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_MADV_POPULATE_WRITE = 23  # Linux ≥ 5.14: fault pages in as if written, without writing them
_GUARD_BYTES = 64 * 2**20
PREFAULT_CHUNK = 4 * 2**20
"""Bytes faulted in per call: the call holds the memory map's lock, which PyTorch's import needs to map its
libraries, so short calls (1 ms each) keep that thread waiting least."""
_SETTLED_MMAP_THRESHOLD = 32 * 2**20
_SETTLED_TRIM_THRESHOLD = 2 * _SETTLED_MMAP_THRESHOLD
"""What glibc's own thresholds become once a process has freed a block of 32 MiB or more (its sliding mmap
threshold, with the trim threshold twice that). Setting either threshold with ``mallopt`` stops the sliding for
good, so :func:`reuse_freed_memory` ends by setting these two in a process that lives on (the napari widget's):
otherwise each later block over 128 KiB there (the metrics' temporaries, napari's) would be mapped afresh and
faulted in, page by page. A process that keeps its heap until it exits (:func:`keep_heap_until_exit`, the command
line) is left as it was: measured there, 32 MiB cost 1.04× the time and 8 % more peak memory on a 256×256×180
volume and nothing on small ones."""
_DEFAULT_MMAP_MAX = 65536
_NO_TRIM = 2**31 - 1


def _load_glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    glibc = all(hasattr(libc, name) for name in ("gnu_get_libc_version", "mallopt", "malloc_trim"))
    if not glibc:
        return None
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.restype, libc.free.argtypes = None, [ctypes.c_void_p]
    libc.madvise.restype, libc.madvise.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


THREAD_HEAP_BYTES = 64 * 2**20
"""glibc's largest heap of a thread's arena (``HEAP_MAX_SIZE`` on 64-bit): the largest block another thread
than the main one can take from, and give back to, a heap."""

_GLIBC = _load_glibc()
_depth = 0
_lock = threading.Lock()
_trim_threshold = _SETTLED_TRIM_THRESHOLD


def keep_heap_until_exit() -> None:
    """From now on, never return the heap's free memory to the system: :func:`trim_heap` does nothing and
    glibc stops trimming the heap's top. For a process that exits once its work is done (the command line):
    its freed feature maps serve the next file, and the kernel takes them all back at exit in one go."""
    global _trim_threshold
    with _lock:
        _trim_threshold = _NO_TRIM
        if _GLIBC is not None:
            _GLIBC.mallopt(_M_TRIM_THRESHOLD, _NO_TRIM)


def settle_mmap_threshold() -> None:
    """From now on, serve blocks up to :data:`_SETTLED_MMAP_THRESHOLD` from the heap, as glibc's own sliding
    threshold does once a block that large was freed (Linux with glibc; elsewhere nothing).

    For many steps of mid-sized tensors (a fit to one scan: a few hundred blocks of 0.1–8 MB a step): after
    :func:`keep_heap_until_exit` (the command line), which stops the sliding at 128 KiB, each of them was mapped,
    faulted in page by page and unmapped again at every step, 36 % of a fit's CPU time in the kernel."""
    if _GLIBC is not None:
        with _lock:
            _GLIBC.mallopt(_M_MMAP_THRESHOLD, _SETTLED_MMAP_THRESHOLD)


@contextmanager
def prefault_heap(nbytes: int) -> Iterator[None]:
    """While the ``with`` block runs, fault in up to ``nbytes`` of fresh heap on another thread (after
    :func:`keep_heap_until_exit` only; elsewhere, or for nothing, the block just runs).

    The block is reserved at the heap's top and freed at once (a small block kept after it stops glibc from
    giving it back), so the next large blocks are carved from it; the thread asks the kernel to fault it in,
    4 MiB at a time from its start, until done or the block ends. Faulting in never changes what memory holds,
    so it is safe while the memory is in use. Pages the thread did not reach cost nothing.
    """
    start = _reserve(nbytes) if _GLIBC is not None and _trim_threshold == _NO_TRIM and nbytes > 0 else None
    if start is None:
        yield
        return
    stop = threading.Event()
    worker = threading.Thread(target=_fault_in, args=(start, nbytes, stop), name="prefault-heap", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()


def _reserve(nbytes: int) -> int | None:
    """The page-aligned start of ``nbytes`` of free heap at its top (``None`` where glibc will not give them)."""
    with _lock:
        _GLIBC.mallopt(_M_MMAP_MAX, 0)  # from the heap, not a mapping of its own that free() would unmap
        try:
            block = _GLIBC.malloc(nbytes + 2 * PREFAULT_CHUNK)
            guard = _GLIBC.malloc(_GUARD_BYTES) if block else None  # never freed: keeps the block off the top
        finally:
            if _depth == 0:
                _GLIBC.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        if block:
            _GLIBC.free(block)
    if not block or not guard:
        return None
    return -(-block // PREFAULT_CHUNK) * PREFAULT_CHUNK


def _fault_in(start: int, nbytes: int, stop: threading.Event) -> None:
    """Fault in ``[start, start + nbytes)`` chunk by chunk until done, ``stop`` or a refusal (an old kernel)."""
    for offset in range(0, nbytes, PREFAULT_CHUNK):
        if stop.is_set() or _GLIBC.madvise(start + offset, PREFAULT_CHUNK, _MADV_POPULATE_WRITE) != 0:
            return


def trim_heap() -> None:
    """Return the heap's free memory to the system (glibc's ``malloc_trim``; elsewhere, or after
    :func:`keep_heap_until_exit`, nothing)."""
    if _GLIBC is not None and _trim_threshold != _NO_TRIM:
        _GLIBC.malloc_trim(0)


@contextmanager
def reuse_freed_memory(*, trim: bool = True) -> Iterator[None]:
    """Serve large CPU blocks from the heap and reuse them until the ``with`` block ends (re-entrant).

    On the outermost exit (of any thread) glibc's settings come back and, with ``trim``, the free memory is
    returned.
    """
    global _depth
    if _GLIBC is None:
        yield
        return
    with _lock:  # threads may nest: the settings stay until the last of them leaves
        if _depth == 0:
            _GLIBC.mallopt(_M_MMAP_MAX, 0)
            _GLIBC.mallopt(_M_TRIM_THRESHOLD, _NO_TRIM)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            last = _depth == 0
            if last:
                _GLIBC.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                if _trim_threshold != _NO_TRIM:  # a process that lives on (napari), not one about to exit
                    _GLIBC.mallopt(_M_MMAP_THRESHOLD, _SETTLED_MMAP_THRESHOLD)
                _GLIBC.mallopt(_M_TRIM_THRESHOLD, _trim_threshold)
        if last and trim:
            trim_heap()
