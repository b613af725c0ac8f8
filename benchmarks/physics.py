"""Physics-core and data-layer speed: simulator, EMG pipeline, dataset loading.

  python -m benchmarks.physics [--quick]

Prints a table and writes benchmarks/results_physics.json.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import print_table, timeit
from pinnmsk import emg, simulator
from pinnmsk.data import loading, spec, writing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench_simulator(model, n_trials: int, seconds: float) -> dict:
    dt = 1e-3
    t = jnp.arange(int(seconds / dt)) * dt
    keys = jax.random.split(jax.random.PRNGKey(0), n_trials)

    def one(k):
        k1, k2 = jax.random.split(k)
        target = simulator.random_target(k1, t, jnp.array([-1.0]), jnp.array([1.0]))
        return simulator.simulate_tracking(model, target,
                                           simulator.random_cocontraction(k2, t, 5), dt).q

    f = jax.jit(jax.vmap(one))
    wall = timeit(lambda: f(keys).block_until_ready(), repeat=2)
    return {"benchmark": f"simulator RK4 1 ms, {n_trials} vmapped trial(s) x {seconds:g} s",
            "wall_s": f"{wall:.3f}",
            "throughput": f"{n_trials * seconds / wall:,.0f} simulated s / wall s"}


def bench_emg(n_samples: int, channels: int) -> list[dict]:
    filt = emg.EnvelopeFilter.from_config(emg.EnvelopeConfig(fs_hz=2000.0))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((n_samples, channels)), jnp.float32)
    off = jax.jit(lambda v: filt.offline(v, validate=False))
    caus = jax.jit(lambda v: filt.causal(v, validate=False))
    rows = []
    for name, fn in (("zero-phase", off), ("causal", caus)):
        wall = timeit(lambda: fn(x).block_until_ready())
        rows.append({"benchmark": f"EMG envelope {name}, {channels} ch x {n_samples:,} samples",
                     "wall_s": f"{wall:.3f}",
                     "throughput": f"{n_samples / wall:,.0f} samples/s "
                                   f"({n_samples * channels / wall:,.0f} channel-samples/s)"})
    return rows


def bench_loading(minutes: float) -> dict:
    """Write ``minutes`` of 8-channel 2 kHz EMG as 1-minute trials, then load it via a spec."""
    fs, rate, n_trials = 2000.0, 100.0, max(1, int(round(minutes)))
    per = int(fs * 60 * minutes / n_trials)
    base = open(os.path.join(ROOT, "data_specs", "synthetic_wrist.toml")).read()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        names = ["FCR", "FCU", "ECRL", "ECRB", "ECU", "X1", "X2", "X3"]
        trials = []
        for k in range(n_trials):
            t = np.arange(per) / fs
            writing.write_csv(f"{d}/e{k}.csv", t, names, 1e-4 * rng.standard_normal((per, 8)))
            tl = np.arange(int(per / fs * rate)) / rate
            writing.write_opensim(f"{d}/k{k}.mot", "k", tl, ["wrist_flex"],
                                  20 * np.sin(tl)[:, None], in_degrees=True)
            trials.append(f'[[trials]]\nsubject = "s0"\nname = "t{k}"\nemg = "e{k}.csv"\n'
                          f'kinematics = "k{k}.mot"\n')
        head = base.split("[[trials]]")[0]
        head = head.replace('root = "../data/synthetic_wrist"', f'root = "{d}"')
        head = head.replace("sampling_rate_hz = 1000.0", "sampling_rate_hz = 2000.0")
        head = head.replace('length_table = "muscle_analysis_Length.sto"',
                            f'length_table = "{ROOT}/data/synthetic_wrist/muscle_analysis_Length.sto"')
        text = head + "\n".join(trials) + '\n[split]\ntest = ["s0/t0"]\n'
        with open(f"{d}/spec.toml", "w") as f:
            f.write(text)
        t0 = time.perf_counter()
        ds = loading.load_dataset(spec.load_spec(f"{d}/spec.toml"))
        wall = time.perf_counter() - t0
    hours = n_trials * per / fs / 3600
    return {"benchmark": f"load dataset: {hours * 60:.0f} min of 8-ch 2 kHz EMG CSV "
                         f"({n_trials} trials, filter + resample)",
            "wall_s": f"{wall:.2f}", "throughput": f"{len(ds.trials)} trials, "
                                                   f"{hours * 3600 / wall:,.0f} s of EMG / s"}


def main(argv):
    quick = "--quick" in argv
    model = loading.build_model(spec.load_spec(os.path.join(ROOT, "data_specs",
                                                            "synthetic_wrist.toml")))
    rows = [bench_simulator(model, 1, 10.0), bench_simulator(model, 1000, 1.0 if quick else 2.0)]
    rows += bench_emg(200_000 if quick else 2_000_000, 8)
    rows.append(bench_loading(5 if quick else 60))
    print_table("pinnmsk physics and data benchmarks", rows,
                os.path.join(ROOT, "benchmarks", "results_physics.json"))


if __name__ == "__main__":
    main(sys.argv[1:])
