"""README tables from sweep results: per physics weight the test figures as mean ± sd over
seeds, its paired validation difference from λ = 0 with a 95 % interval (and whether it
excludes zero), the weight validation chooses, the chosen seeds as an ensemble, and the linear
ridge decoder on the same split. Pure: sweep.json documents in, Markdown out
(``experiments.table`` runs the sweeps)."""

from __future__ import annotations




def _seed_stat(block: dict, path) -> tuple[float, float] | None:
    """(mean, sd) over seeds of the figure at ``path`` in an across-seeds block."""
    node = block
    for k in path:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return float(node["mean"]), float(node["sd"])


def _cell(stat) -> str:
    return "" if stat is None else f"{stat[0]:.3f} ± {stat[1]:.3f}"


def interval(vs0: dict | None) -> str:
    """The paired validation difference from λ = 0 (positive: worse than λ = 0) as
    'mean [lo, hi]', its 95 % interval (± 1.96 SE over seeds × validation trials), and whether
    the interval excludes zero."""
    if not vs0:
        return ""
    m, se = vs0["mean_difference"], vs0["standard_error"]
    lo, hi = m - 1.96 * se, m + 1.96 * se
    verdict = ("better than λ = 0" if hi < 0 else "worse than λ = 0" if lo > 0
               else "includes 0: no result")
    return f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}] ({verdict})"


def sweep_rows(sweep: dict, coords, label: str = "") -> list[list[str]]:
    """Table rows of one sweep.json with seeds: one per λ, then the ensemble of the chosen λ."""
    across = sweep.get("test_across_seeds") or {}
    chosen = (sweep.get("chosen_on_validation") or {})
    lam_chosen = chosen.get("physics_weight")
    rows = []
    for lam, block in across.items():
        n = len(next(iter(block["angle"].values()))["r2"]["per_seed"])
        what = f"{label}λ = {lam}, {n} seeds"
        if lam_chosen is not None and float(lam) == float(lam_chosen):
            holds = "holds" if chosen.get("holds_across_seeds") else "does not hold"
            what += f" (**chosen on validation**; {holds} across seeds)"
        rows.append([what] + [_cell(_seed_stat(block, ("angle", c, "r2"))) for c in coords]
                    + [_cell(_seed_stat(block, ("force", "mean", "r2"))),
                       interval((sweep.get("vs_lambda0_by_weight") or {}).get(lam))])
    ens = sweep.get("ensemble")
    if ens:
        test = ens.get("test_of_mean", {})
        cov = ens.get("angle_band", {})
        band = ", ".join(f"{c} {100 * cov[c]['test_coverage']:.1f} %" for c in coords
                         if c in cov and "test_coverage" in cov[c])
        fcov = [b["test_coverage"] for b in (ens.get("force_band") or {}).values()
                if b.get("calibrated") and "test_coverage" in b]
        if fcov:
            band += f"; forces {100 * min(fcov):.1f}–{100 * max(fcov):.1f} %"
        rows.append([f"{label}the chosen λ's seeds as an ensemble (mean; 90 % band test coverage "
                     f"{band or 'n/a'})"]
                    + [f"{test['angle'][c]['r2']:.3f}" if c in test.get("angle", {}) else ""
                       for c in coords]
                    + [f"{test['force']['mean']['r2']:.3f}" if "force" in test else "", ""])
    return rows


def ridge_row(angles: list, force: dict | None, label_free: bool = False) -> list[str]:
    """The linear ridge decoder's row: test R² per coordinate (``angles``, one
    :func:`pinnmsk.ridge.ridge_decoder` result each) and of the forces; ``label_free``:
    the table's runs have no force labels, which the ridge's force fit uses."""
    f = "" if force is None else f"{force['test_r2']:.3f}" + (
        " (fitted with the force labels the runs lack)" if label_free else "")
    return (["linear ridge decoder from the lagged EMG envelope (strength chosen on validation)"]
            + [f"{a['test_r2']:.3f}" for a in angles] + [f, ""])


def markdown(title: str, coords, rows: list[list[str]]) -> str:
    head = (["run"] + [f"test {c} R²" for c in coords]
            + ["test force R² (mean over muscles)", "validation loss vs λ = 0, 95 % interval"])
    lines = [f"**{title}**", "", "| " + " | ".join(head) + " |",
             "|---" * len(head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


