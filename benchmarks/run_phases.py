"""Where the README's main run spends its time: the phases of
``python -m experiments.train --data_spec=data_specs/synthetic_wrist.toml --epochs=19
--learning_rate=5e-3`` (configs/default.py),
timed in one process as the binary runs them (no checkpoints or files, which the binary adds).

  python -m benchmarks.run_phases [--epochs=19]

Prints a table and writes benchmarks/results_run_phases.json.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

T_START = time.perf_counter()

import jax  # noqa: E402  (timed: the imports are a phase)

from benchmarks.common import device_name, print_table  # noqa: E402
from pinnmsk import evaluation, host, plots, prepare, runner, sanity, terms  # noqa: E402
from pinnmsk.config import TrainConfig  # noqa: E402
from pinnmsk.data import loading, spec  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "data_specs", "synthetic_wrist.toml")


def main(argv) -> None:
    host.keep_freed_memory()  # as the binary does (experiments.cli)
    host.run_on_calling_thread()
    epochs = int(next((a.split("=", 1)[1] for a in argv if a.startswith("--epochs=")), 19))
    phases = [("imports (jax, flax, optax, pinnmsk)", time.perf_counter() - T_START)]
    t = time.perf_counter()
    data = loading.load_dataset(spec.load_spec(SPEC))
    phases.append(("load the dataset (read, filter, normalise 18 trials)", time.perf_counter() - t))
    config = TrainConfig(epochs=epochs, learning_rate=5e-3)  # configs/default.py's
    t = time.perf_counter()
    prep = prepare.prepare(data, config)
    sanity.sanity_by_subject(prep.data, prep.train_trials, prep.consts.tendon)
    phases.append(("prepare (statistics, scales, network) + the model sanity report",
                   time.perf_counter() - t))
    first = {}

    def log(line: str) -> None:
        if line.startswith("first step done in"):
            first["s"] = float(line.split()[4])

    t = time.perf_counter()
    _, _, _, best = runner.fit(prep, config, terms.run_weights(config, 10.0), None,
                               log=log, progress_every_s=1e9)
    jax.block_until_ready(jax.tree_util.tree_leaves(best.params))
    fit_s = time.perf_counter() - t
    phases.append(("first train step (trace + compile + run)", first.get("s", float("nan"))))
    phases.append((f"{epochs} epochs (the rest of training, validation scoring included)",
                   fit_s - first.get("s", 0.0)))
    t = time.perf_counter()
    test, per_trial = evaluation.evaluate(prep, best.params)
    evaluation.evaluate(prep, best.params, prep.val_trials)
    evaluation.torque_budgets(prep, best.params, per_trial)
    phases.append(("evaluation (test + validation metrics, torque budgets)",
                   time.perf_counter() - t))
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        for item in per_trial:
            plots.plot_trial(os.path.join(d, f"{item['id'].replace('/', '_')}.png"), item,
                             data.spec.labels.coordinates, data.spec.muscle_names)
    phases.append(("plots (one figure per test trial)", time.perf_counter() - t))
    total = sum(s for _, s in phases)
    rows = [{"phase": name, "seconds": round(s, 1), "share": f"{100 * s / total:.0f} %"}
            for name, s in phases]
    rows.append({"phase": "total", "seconds": round(total, 1), "share": "100 %"})
    print(f"device: {device_name()}; test angle R² {test['angle']['wrist_flex']['r2']:.3f}")
    print_table(f"the default run's phases ({epochs} epochs)", rows,
                os.path.join(ROOT, "benchmarks", "results_run_phases.json"))


if __name__ == "__main__":
    main(sys.argv[1:])
