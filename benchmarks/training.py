"""Training and inference speed: PI vs data-only step, vmapped sweep vs sequential runs,
batch-1 latency, streaming throughput.

  python -m benchmarks.training [--quick]

Prints tables and writes benchmarks/results_training.json. Uses the embedded synthetic dataset.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import device_name, print_table
from pinnmsk import emg, runner, train
from pinnmsk.data import dataset, opensim, spec
from pinnmsk.streaming import Streamer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "data_specs", "synthetic_wrist.toml")


def _step_program(prep, cfg, weights):
    """(jitted gather + train step, initial state, device data) as ``runner.fit`` builds them."""
    tx = train.make_optimizer(cfg, 100)
    use_physics = bool(np.any(np.asarray(weights)[..., 2:] != 0))
    sweep = weights.ndim == 2
    step = runner.make_train_step(prep, tx, use_physics, sweep)
    init = lambda: train.init_state(prep.net, tx, prep.train.emg.shape[1:],
                                    len(prep.data.subjects), prep.data.model_of(0).n_muscles,
                                    np.asarray(prep.consts.bounds), 0)
    state = train.stack_states([init()] * len(weights)) if sweep else init()
    return runner.make_step_fn(step, sweep), state, runner._device_data(prep.train)


def _step_time(prep, cfg, weights, n_steps: int) -> float:
    """Median wall time [s] of one jitted train step (gather + step) over ``n_steps`` calls."""
    bs = cfg.batch_size
    fn, state, data = _step_program(prep, cfg, weights)
    idx = jnp.asarray(np.random.default_rng(0).permutation(len(prep.train))[: (n_steps + 2) * bs]
                      .reshape(n_steps + 2, bs))
    w = jnp.asarray(weights)
    for i in range(2):  # compile + warm-up
        state, m = fn(state, data, idx, i, w)
    jax.block_until_ready(m)
    times = []
    for i in range(2, n_steps + 2):
        t0 = time.perf_counter()
        state, m = fn(state, data, idx, i, w)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _step_gflop(prep, cfg, weights) -> float:
    """XLA's FLOP count of one compiled (gather + train step) program [GFLOP]."""
    fn, state, data = _step_program(prep, cfg, weights)
    idx = jnp.zeros((1, cfg.batch_size), jnp.int32)
    cost = fn.lower(state, data, idx, 0, jnp.asarray(weights)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan"))) / 1e9


def _matmul_gflops() -> float:
    """Sustained float32 matmul rate of this device (2048², jitted) [GFLOP/s]."""
    a = jnp.ones((2048, 2048), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    t0 = time.perf_counter()
    for _ in range(10):
        jax.block_until_ready(f(a))
    return 2 * 2048**3 * 10 / (time.perf_counter() - t0) / 1e9


def main(argv):
    """Sections: ``steps``, ``sweep``, ``inference`` (all unless some are named)."""
    quick = "--quick" in argv
    wanted = {a for a in argv if not a.startswith("--")} or {"steps", "sweep", "inference"}
    n_steps = 5 if quick else 20
    data = dataset.load_dataset(spec.load_spec(SPEC))
    cfg = train.TrainConfig(batch_size=256)
    prep = runner.prepare(data, cfg)
    out_path = os.path.join(ROOT, "benchmarks", "results_training.json")
    results = json.load(open(out_path)) if os.path.exists(out_path) else {}
    results["device"] = device_name()

    # 1. PI step vs data-only step, CNN and baselines
    rows = []
    for model in ("cnn", "mlp", "gru") if "steps" in wanted else ():
        p = runner.prepare(data, train.TrainConfig(model=model))
        t_data = _step_time(p, cfg, runner.weights_for(cfg, 0.0)[0], n_steps)
        t_pi = _step_time(p, cfg, runner.weights_for(cfg, 1.0)[0], n_steps)
        t_fd = _step_time(runner.prepare(data, train.TrainConfig(model=model, accel="fd")), cfg,
                          runner.weights_for(cfg, 1.0)[0], n_steps)
        rows.append({"model": model, "data-only windows/s": f"{cfg.batch_size / t_data:,.0f}",
                     "PI (autodiff) windows/s": f"{cfg.batch_size / t_pi:,.0f}",
                     "PI (finite diff) windows/s": f"{cfg.batch_size / t_fd:,.0f}",
                     "PI / data-only cost": f"{t_pi / t_data:.2f}x"})
        if quick:
            break
    if rows:
        print_table(f"train step, batch {cfg.batch_size}, 1 s windows", rows)
        results["train_step"] = rows

    # 2. vmapped sweep vs K sequential runs
    rows = []
    t1 = _step_time(prep, cfg, runner.weights_for(cfg, 1.0)[0], n_steps) if "sweep" in wanted \
        else 0.0
    for k in (1, 2, 4, 8, 16) if "sweep" in wanted else ():
        if quick and k > 4:
            break
        tk = _step_time(prep, cfg, runner.weights_for(cfg, np.linspace(0, 10, k)), n_steps)
        rows.append({"K": k, "vmapped step ms": f"{tk * 1e3:.1f}",
                     "K sequential steps ms": f"{k * t1 * 1e3:.1f}",
                     "speed-up": f"{k * t1 / tk:.2f}x"})
    if rows:
        print_table("sweep: one vmapped program vs K sequential runs (per step)", rows)
        results["sweep"] = rows
        gflop, peak = _step_gflop(prep, cfg, runner.weights_for(cfg, 1.0)[0]), _matmul_gflops()
        bound = peak * t1 / gflop  # K·t1 / (K·gflop / peak): a sweep that ran at matmul peak
        print(f"one PI step: {gflop:.2f} GFLOP in {t1 * 1e3:.1f} ms = {gflop / t1:.0f} GFLOP/s; "
              f"matmul peak {peak:.0f} GFLOP/s, so no sweep can beat {bound:.1f}x here\n")
        results["sweep_bound"] = {"step_gflop": gflop, "step_gflops": gflop / t1,
                                  "matmul_peak_gflops": peak, "max_speedup": bound}
    if "inference" not in wanted:
        _write(out_path, results)
        return

    # 3. inference latency at batch 1 and 4. streaming throughput
    tx = train.make_optimizer(cfg, 1)
    st = train.init_state(prep.net, tx, prep.train.emg.shape[1:], len(data.subjects),
                          data.model_of(0).n_muscles, np.asarray(prep.consts.bounds), 0)
    predict = train.make_predict(prep.net)
    x = jnp.asarray(prep.train.emg[:1])
    jax.block_until_ready(predict(st.params["net"], x))
    lat = []
    for i in range(200 if quick else 1000):
        t0 = time.perf_counter()
        jax.block_until_ready(predict(st.params["net"], x))
        lat.append(time.perf_counter() - t0)
    lat = np.asarray(lat) * 1e3
    s = data.spec
    raw = opensim.read_table(s.resolve(s.trials[0].emg)).select(list(s.emg.channels))
    cfg_e = emg.EnvelopeConfig(s.emg.sampling_rate_hz, s.emg.bandpass_hz, s.emg.bandpass_order,
                               s.emg.lowpass_hz, s.emg.lowpass_order)
    rows = [{"benchmark": "inference batch 1 (jitted, CNN)", "median": f"{np.median(lat):.3f} ms",
             "p99": f"{np.percentile(lat, 99):.3f} ms"}]
    for chunk_s in (0.01, 0.1, 1.0):
        streamer = Streamer(emg.EnvelopeFilter.from_config(cfg_e), data.normaliser_v[0],
                            int(s.emg.sampling_rate_hz / s.labels.rate_hz), prep.window, prep.net,
                            st.params["net"])
        chunk = int(chunk_s * s.emg.sampling_rate_hz)
        streamer.push(raw[:chunk])  # compile
        t0 = time.perf_counter()
        for lo in range(chunk, len(raw), chunk):
            streamer.push(raw[lo:lo + chunk])
        wall = time.perf_counter() - t0
        sec = (len(raw) - chunk) / s.emg.sampling_rate_hz
        rows.append({"benchmark": f"streaming, {chunk_s * 1e3:g} ms chunks (causal filter + model)",
                     "median": f"{sec / wall:,.0f}x real time",
                     "p99": f"{wall / ((len(raw) - chunk) / chunk) * 1e3:.2f} ms per chunk"})
    print_table("inference", rows)
    results["inference"] = rows
    _write(out_path, results)


def _write(path, results):
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
