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
from pinnmsk import emg, host, prepare, runner, terms, train
from pinnmsk.data import loading, opensim, spec
from pinnmsk.streaming import Streamer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "data_specs", "synthetic_wrist.toml")


def _step_program(prep, cfg, weights, layout="vmap", per_model=False):
    """(jitted gather + train step, initial state, device data): ``runner.fit``'s own programs
    (:func:`pinnmsk.runner.programs`); ``layout``: the sweep layout (default "vmap");
    ``per_model``: each model its own seed and batches (``--seeds``)."""
    k_models = terms.n_models(weights)
    sweep = k_models is not None
    progs = runner.programs(prep, cfg, 100, terms.uses_physics(weights), sweep, layout,
                            batch_per_model=per_model)
    if per_model:
        state = train.stack_states([progs.init(k) for k in range(k_models)])
    else:
        state = progs.init(0)
        state = train.stack_states([state] * k_models) if sweep else state
    return progs.step_fn, state, runner._device_data(prep.train)


def _step_times(prep, cfg, programs, n_steps: int, block: int = 5, rounds_out=None
                ) -> list[float]:
    """Median wall time [s] of one jitted train step (gather + step) for each of ``programs``
    ((weights, layout) pairs). The programs take turns in blocks of ``block`` consecutive
    steps, the first step of each block not counted: each is timed running steadily, as in
    training (not right after another program has evicted its data from the caches), while a
    change in the machine's load or clock affects all of them alike. ``rounds_out``: a list
    that receives, per round of turns, each program's median step in it (paired ratios)."""
    bs = cfg.batch_size
    rounds = max(1, -(-n_steps // (block - 1)))
    n_idx = rounds * block + 2
    idx = jnp.asarray(np.random.default_rng(0).permutation(len(prep.train))[: n_idx * bs]
                      .reshape(n_idx, bs) if n_idx * bs <= len(prep.train) else
                      np.random.default_rng(0).integers(0, len(prep.train), (n_idx, bs)))
    runs = []
    for weights, layout, *per_model in programs:
        per_model = bool(per_model and per_model[0])
        fn, state, data = _step_program(prep, cfg, weights, layout, per_model)
        w = {n: jnp.asarray(x) for n, x in weights.items()}
        ix = jnp.stack([jnp.roll(idx, k, axis=1) for k in range(terms.n_models(weights))]) \
            if per_model \
            else idx
        for i in range(2):  # compile + warm-up
            state, m = fn(state, data, ix, i, w)
        jax.block_until_ready(m)
        runs.append([fn, state, data, w, ix])
    times = [[] for _ in runs]
    for r in range(rounds):
        for run, t in zip(runs, times):
            for j in range(block):
                t0 = time.perf_counter()
                run[1], m = run[0](run[1], run[2], run[4], 2 + r * block + j, run[3])
                jax.block_until_ready(m)
                if j:
                    t.append(time.perf_counter() - t0)
        if rounds_out is not None:
            rounds_out.append([float(np.median(t[-(block - 1):])) for t in times])
    return [float(np.median(t)) for t in times]


def _step_time(prep, cfg, weights, n_steps: int, layout="vmap") -> float:
    """Median wall time [s] of one jitted train step over ``n_steps`` calls."""
    return _step_times(prep, cfg, [(weights, layout)], n_steps)[0]


def _step_gflop(prep, cfg, weights) -> float:
    """XLA's FLOP count of one compiled (gather + train step) program [GFLOP]."""
    fn, state, data = _step_program(prep, cfg, weights)
    idx = jnp.zeros((1, cfg.batch_size), jnp.int32)
    w = {n: jnp.asarray(x) for n, x in weights.items()}
    cost = fn.lower(state, data, idx, 0, w).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan"))) / 1e9


def _matmul_gflops() -> float:
    """Sustained float32 matmul rate of this device (2048² on a CPU, 8192² else) [GFLOP/s]."""
    n = 2048 if jax.default_backend() == "cpu" else 8192
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    t0 = time.perf_counter()
    for _ in range(10):
        jax.block_until_ready(f(a))
    return 2 * n**3 * 10 / (time.perf_counter() - t0) / 1e9


def _flag(argv, name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), default)


def main(argv):
    """Sections: ``steps``, ``sweep``, ``seeds``, ``inference`` (all unless some are named).
    Flags:
    ``--quick``; ``--models=cnn,mlp,gru`` the step section's encoders; ``--n_colloc=1,2`` its
    collocation times per window (default: :class:`pinnmsk.config.TrainConfig`'s);
    ``--ks=1,2,4`` the sweep sizes (default 1..16 on a CPU, 1..64 elsewhere);
    ``--out=PATH`` the JSON (default benchmarks/results_training[_<platform>].json);
    ``--default_malloc``: leave glibc's allocator and XLA's dispatch as they are (the binaries
    call :func:`pinnmsk.host.keep_freed_memory` and :func:`pinnmsk.host.run_on_calling_thread`;
    this measures what they save)."""
    if "--default_malloc" not in argv:
        host.keep_freed_memory()
        host.run_on_calling_thread()
    quick = "--quick" in argv
    wanted = {a for a in argv if not a.startswith("--")} or {"steps", "sweep", "seeds",
                                                             "inference"}
    n_steps = 5 if quick else 20
    platform = jax.default_backend()
    ks = [int(k) for k in _flag(argv, "ks", "1,2,4,8,16" if platform == "cpu" else
                                "1,2,4,8,16,32,64").split(",")]
    ks = [k for k in ks if k <= 4] if quick else ks
    data = loading.load_dataset(spec.load_spec(SPEC))
    cfg = train.TrainConfig(batch_size=256)
    prep = prepare.prepare(data, cfg)
    out_path = _flag(argv, "out", os.path.join(
        ROOT, "benchmarks", "results_training" + ("" if platform == "cpu" else f"_{platform}")
        + ".json"))
    results = json.load(open(out_path)) if os.path.exists(out_path) else {}
    results["device"] = device_name()

    # 1. PI step vs data-only step, CNN and baselines
    rows = []
    n_collocs = [int(k) for k in _flag(argv, "n_colloc", str(train.TrainConfig().n_colloc))
                 .split(",")]
    variants = [(model, k) for model in _flag(argv, "models", "cnn,mlp,gru").split(",")
                for k in n_collocs]
    for model, n_colloc in variants if "steps" in wanted else ():
        p = prepare.prepare(data, train.TrainConfig(model=model, n_colloc=n_colloc))
        # the ratio per round of turns (paired: both programs under the same load), its
        # median and quartiles over 4x the rounds of the other sections: one run's 20 steps
        # gave ratios from 1.18x to 1.45x between runs
        per_round = []
        t_data, t_pi = _step_times(p, cfg, [(terms.run_weights(cfg, 0.0), "vmap"),
                                            (terms.run_weights(cfg, 1.0), "vmap")],
                                   4 * n_steps, rounds_out=per_round)
        ratios = np.asarray([b / a for a, b in per_round])
        q1, q2, q3 = np.percentile(ratios, [25, 50, 75])
        t_fd = _step_time(prepare.prepare(data, train.TrainConfig(model=model, accel="fd",
                                                                  n_colloc=n_colloc)), cfg,
                          terms.run_weights(cfg, 1.0), n_steps)
        name = model if len(n_collocs) == 1 else f"{model}, {n_colloc} colloc."
        rows.append({"model": name, "data-only windows/s": f"{cfg.batch_size / t_data:,.0f}",
                     "PI (autodiff) windows/s": f"{cfg.batch_size / t_pi:,.0f}",
                     "PI (finite diff) windows/s": f"{cfg.batch_size / t_fd:,.0f}",
                     "PI / data-only cost": f"{q2:.2f}x ({q1:.2f}-{q3:.2f}, "
                                            f"{len(ratios)} rounds)"})
        if quick:
            break
    if rows:
        print_table(f"train step, batch {cfg.batch_size}, 1 s windows", rows)
        results["train_step"] = rows

    # 2. one K-model sweep program vs K sequential runs, in each sweep layout
    rows = []
    one = (terms.run_weights(cfg, 1.0), "vmap")
    t1s = []
    for k in ks if "sweep" in wanted else ():
        layouts = [lay for lay in train.SWEEP_LAYOUTS  # K encoder copies: compile time
                   if not (lay == "unrolled_encoder" and k > 16)]
        t1, *tks = _step_times(prep, cfg, [one] + [
            (terms.weights_for(cfg, np.linspace(1, 10, k)), lay) for lay in layouts], n_steps)
        t1s.append(t1)
        row = {"K": k, "K sequential steps ms": f"{k * t1 * 1e3:.1f}"}
        for layout in train.SWEEP_LAYOUTS:
            tk = dict(zip(layouts, tks)).get(layout)
            row[f"{layout} ms"] = "-" if tk is None else f"{tk * 1e3:.1f}"
            row[f"{layout} speed-up"] = "-" if tk is None else f"{k * t1 / tk:.2f}x"
        rows.append(row)
    if rows:
        print_table("sweep: one K-model program vs K sequential runs (per step, by layout)", rows)
        results["sweep"] = rows
        t1 = float(np.median(t1s))
        gflop, peak = _step_gflop(prep, cfg, terms.run_weights(cfg, 1.0)), _matmul_gflops()
        bound = peak * t1 / gflop  # K·t1 / (K·gflop / peak): a sweep that ran at matmul peak
        print(f"one PI step: {gflop:.2f} GFLOP in {t1 * 1e3:.1f} ms = {gflop / t1:.0f} GFLOP/s; "
              f"float32 matmul peak {peak:.0f} GFLOP/s, so no sweep can beat {bound:.1f}x here\n")
        results["sweep_bound"] = {"step_gflop": gflop, "step_gflops": gflop / t1,
                                  "matmul_peak_gflops": peak, "max_speedup": bound}
    # 2b. seeds: a λ trained with 4 seeds (own initialisation and batches) in one program
    if "seeds" in wanted:
        t1, *t4 = _step_times(prep, cfg, [(terms.run_weights(cfg, 1.0), "vmap")] + [
            (terms.weights_for(cfg, [1.0] * 4), lay, True) for lay in train.SWEEP_LAYOUTS],
            n_steps)
        rows = [{"program": "one model", "ms per step": f"{t1 * 1e3:.1f}", "vs 4 runs": "-"}]
        rows += [{"program": f"--seeds=4, {lay}", "ms per step": f"{t * 1e3:.1f}",
                  "vs 4 runs": f"{4 * t1 / t:.2f}x"} for lay, t in zip(train.SWEEP_LAYOUTS, t4)]
        print_table("seeds: one λ with 4 seeds in one program vs one model (per step)", rows)
        results["seeds"] = rows
    if "inference" not in wanted:
        _write(out_path, results)
        return

    # 3. inference latency at batch 1 and 4. streaming throughput
    tx = train.make_optimizer(cfg, 1)
    st = prepare.new_state(prep, tx, 0)
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
    for chunk_s, incremental in ((0.01, True), (0.01, False), (0.1, True), (1.0, True)):
        chunk = int(chunk_s * s.emg.sampling_rate_hz)
        speed = []  # three passes over the trial, each from a fresh stream: real time / wall
        for _ in range(3):
            streamer = Streamer(emg.EnvelopeFilter.from_config(cfg_e), data.normaliser_v[0],
                                int(s.emg.sampling_rate_hz / s.labels.rate_hz), prep.window,
                                prep.net, st.params["net"], incremental=incremental)
            streamer.push(raw[:chunk])  # compile
            t0 = time.perf_counter()
            for lo in range(chunk, len(raw), chunk):
                streamer.push(raw[lo:lo + chunk])
            speed.append((len(raw) - chunk) / s.emg.sampling_rate_hz
                         / (time.perf_counter() - t0))
        med = float(np.median(speed))
        how = "incremental CNN" if incremental else "whole window per tick"
        rows.append({"benchmark": f"streaming, {chunk_s * 1e3:g} ms chunks (filter + {how})",
                     "median": f"{med:,.0f}x real time ({min(speed):,.0f}-{max(speed):,.0f}x)",
                     "p99": f"{chunk_s / med * 1e3:.3f} ms per chunk"})
    print_table("inference", rows)
    results["inference"] = rows
    _write(out_path, results)


def _write(path, results):
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
