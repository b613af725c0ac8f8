"""Train one model per physics weight in a single vmapped program, evaluate each.

  python -m experiments.sweep --data_spec=data_specs/synthetic_wrist.toml --workdir=runs/sweep \
      --physics_weights=0,0.1,1,10

The weights are the config's ``physics_weights`` (--physics_weights, or --config's); the run's
other settings as ``experiments.train`` reads them, which writes the same sweep.json when given
several weights or seeds.

Writes WORKDIR/sweep.json (one metrics block per weight) and WORKDIR/plots/ (unless --noplots).

``--seeds=N`` trains every weight with N seeds (--seed, --seed + 1, ...) in the same program:
each model initialised, shuffled and drawing collocation times as the single run with its seed.
sweep.json then has a result per (weight, seed), each weight's test figures as mean ± sd over
seeds (``test_across_seeds``), the weight validation chooses for each seed and whether that
choice holds across seeds, and each weight's paired validation difference from λ = 0 over
seeds × validation trials (``vs_lambda0_by_weight``).
"""

from __future__ import annotations

from experiments import cli, train  # train defines the flags: the same as experiments.train's


def main(argv):
    del argv
    train.run(sweep=True)


if __name__ == "__main__":
    cli.run(main)
