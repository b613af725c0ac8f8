"""Timing helpers and table printing shared by the benchmark scripts."""

from __future__ import annotations

import json
import platform
import time

import jax


def timeit(fn, *, repeat: int = 3, warmup: int = 1) -> float:
    """Best wall time [s] of ``fn()`` (which must block until its result is ready)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def device_name() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', '')} ({platform.processor() or platform.machine()})"


def print_table(title: str, rows: list[dict], json_path: str | None = None) -> None:
    """Print rows (dicts with the same keys) as an aligned table; optionally write JSON."""
    keys = list(rows[0])
    cells = [[str(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print(f"\n{title}  [{device_name()}]")
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"title": title, "device": device_name(), "rows": rows}, f, indent=1)
