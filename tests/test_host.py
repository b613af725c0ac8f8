"""pinnmsk.host: freed large blocks stay with the process (no page faults on reuse)."""

import ctypes
import subprocess
import sys

import pytest

from conftest import ROOT

# In a fresh process (the setting is process-wide): allocate, touch and free a 48 MiB block ten
# times, as XLA:CPU does with a step's temporary buffer, and print the page faults it cost.
_PROBE = """
import ctypes, resource, sys
from pinnmsk import host
if sys.argv[1] == "keep":
    assert host.keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
n = 48 << 20
def cycle():
    p = libc.malloc(n); libc.memset(p, 1, n); libc.free(p)
cycle()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return int(out.stdout.split()[-1])


def _glibc() -> bool:
    try:
        return bool(ctypes.CDLL("libc.so.6").gnu_get_libc_version())
    except (OSError, AttributeError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _glibc(), reason="glibc only")
def test_keep_freed_memory_stops_refaulting_large_blocks():
    pages = 10 * (48 << 20) // 4096
    default, kept = _faults("default"), _faults("keep")
    assert default > 0.5 * pages  # glibc maps and unmaps each 48 MiB block
    assert kept < 0.05 * pages  # the block is reused from the heap, already faulted in
