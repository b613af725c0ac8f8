"""The host process, set for XLA:CPU's per-step buffers: glibc's allocator and the thread a
call runs on.

XLA:CPU allocates each execution's temporary buffer with ``malloc`` and frees it when the call
returns: 34 MB for the physics-informed train step on the default data, hundreds of MB for a
sweep's. glibc serves every block above its mmap threshold (which it never raises past 32 MiB)
with a fresh ``mmap`` and unmaps it on ``free``, so every step page-faults its whole temporary
buffer in again, one 4 KiB page at a time: the PI step took 58 ms instead of 44 ms
(``benchmarks/README.md``), while the data-only step, whose buffer is 28 MB, paid nothing.
:func:`keep_freed_memory` has glibc serve large blocks from its heap and keep what is freed for
the next step. The binaries call both functions here at start-up (:mod:`experiments.cli`); a
program of your own that trains on a CPU should call them once before its first step. Neither
changes a result.

Its reach: by default XLA:CPU runs a call on a worker thread, whose glibc arena holds blocks up
to 64 MiB; a larger buffer (a K = 8 sweep step's is 345 MB) is still mapped per call (88 k page
faults per step, measured). :func:`run_on_calling_thread` has XLA run each call on the thread
that makes it (the main one, whose arena has no such limit): the K = 8 sweep step then faults
87 times instead of 88 k, 375 → 261 ms, and a single step runs as before (26.8 ms either way).
Sharing the main arena between threads (``M_ARENA_MAX`` = 1) instead made the single step 50 %
slower (lock contention) and was left out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory(trim_threshold_bytes: int = 1 << 30) -> bool:
    """Have glibc's ``malloc`` serve every block from its heap (no per-block ``mmap``) and keep
    up to ``trim_threshold_bytes`` of freed memory at the heap's top instead of returning it to
    the system. Process-wide; call once. Returns whether it took effect (False off glibc Linux,
    where there is nothing to do)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    trim = int(min(max(trim_threshold_bytes, 0), 2**31 - 1))
    return mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, trim) == 1


def run_on_calling_thread() -> None:
    """Have XLA:CPU run each jitted call on the thread that makes it instead of a worker thread
    (``jax_cpu_enable_async_dispatch`` off), so that its temporary buffer comes from the main
    thread's glibc arena, which :func:`keep_freed_memory` lets keep blocks of any size. The
    training loop waits on each step's result once per epoch; what it loses is overlapping the
    next step's Python dispatch (~0.1 ms) with the current step. Process-wide."""
    import jax  # here, not at the top: the binaries answer --help without importing jax

    jax.config.update("jax_cpu_enable_async_dispatch", False)
