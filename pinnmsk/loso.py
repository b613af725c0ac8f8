"""Leave-one-subject-out figures: per subject and pooled, (i) no calibration, (ii) calibrated
from EMG only, (iii) from EMG + angles, each with several amounts of calibration recordings,
and (iv) the within-subject reference. Pure: rows in, summaries and text out
(``experiments.loso`` trains and calibrates)."""

from __future__ import annotations

import numpy as np

NONE, WITHIN = "none", "within"
RIDGE = "ridge:"  # the prefix of the linear decoder's conditions


def ridge_figures(train, val, test, lags, calibrated: bool = False) -> dict:
    """:func:`figures` of the ridge decoder from the lagged EMG envelope
    (:func:`pinnmsk.ridge.ridge_decoder`) fitted on ``train``, its strength chosen on
    ``val``, on ``test``: the angle, and the forces where every trial has them and not
    ``calibrated`` (a calibration has no force labels)."""
    from pinnmsk import ridge

    emg = lambda t: t.excitation
    out = {"angle_r2": ridge.ridge_decoder(train, val, test, lags, emg,
                                                 lambda t: t.q_rad)["test_r2"]}
    force = None if calibrated else ridge.ridge_decoder(train, val, test, lags, emg,
                                                              lambda t: t.forces_n)
    if force is not None:
        out["force_r2"] = force["test_r2"]
    return out


def figures(block: dict) -> dict:
    """{"angle_r2": mean over coordinates} of an evaluation block
    (:func:`pinnmsk.evaluation.evaluate`), and with force truth means over muscles of
    "force_r2" and of its three parts (:func:`pinnmsk.metrics.regression_metrics`; force_r2 =
    force_shape_r2 − force_scale_loss − force_offset_loss): "force_shape_r2" (Pearson r², the
    time course alone), "force_scale_loss" ((s − r)², s = sd predicted / sd true) and
    "force_offset_loss" (b², the mean level's error in sd of the truth); and "force_sd_ratio"
    (s: the amplitude, 1 = right)."""
    out = {"angle_r2": float(np.mean([m["r2"] for m in block["angle"].values()]))}
    if "force" in block:
        per = [v for m, v in block["force"].items() if m != "mean"]
        mean = lambda f: float(np.mean([f(v) for v in per]))
        out["force_r2"] = float(block["force"]["mean"]["r2"])
        out["force_shape_r2"] = mean(lambda v: v["pearson_r"] ** 2)
        out["force_scale_loss"] = mean(lambda v: (v["sd_ratio"] - v["pearson_r"]) ** 2)
        out["force_offset_loss"] = mean(lambda v: v["bias_sd"] ** 2)
        out["force_sd_ratio"] = float(block["force"]["mean"]["sd_ratio"])
    return out


def condition(mode: str, seconds: float) -> str:
    """The name of a calibrated condition: ``"<mode>@<seconds>s"`` or ``"<mode>@all"``."""
    return f"{mode}@{'all' if seconds <= 0 else f'{seconds:g}s'}"


def mean_over_seeds(per_seed: list) -> dict:
    """Rows ({subject: {condition: figures}}) of several seeds as one: per subject and condition
    each figure's mean over the seeds (those every seed has), so that :func:`summarise` pairs
    the seed-averaged figures over subjects. One seed's rows come back as they are."""
    if len(per_seed) == 1:
        return per_seed[0]
    out = {}
    for subj in per_seed[0]:
        out[subj] = {}
        for c, figs in per_seed[0][subj].items():
            have = [r[subj][c] for r in per_seed if c in r.get(subj, {})]
            if len(have) == len(per_seed):
                out[subj][c] = {q: float(np.mean([h[q] for h in have])) for q in figs
                                if all(q in h for h in have)}
    return out


def summarise(rows: dict, quantity: str) -> dict:
    """Over subjects (``rows``: {subject: {condition: figures}}), per condition: mean, sd, and
    for calibrated ones the paired difference from no calibration (mean, sd, subjects better)
    and the share of the gap to the within-subject reference it closes, per subject
    ((c − none) / (within − none); None where the gap is under 0.005)."""
    subjects = [s for s in rows if quantity in rows[s].get(NONE, {})]
    conds = list(dict.fromkeys(c for s in subjects for c in rows[s]))
    out = {}
    for c in conds:
        have = [s for s in subjects if quantity in rows[s].get(c, {})]
        if not have:
            continue
        vals = np.array([rows[s][c][quantity] for s in have])
        d = {"mean": float(vals.mean()), "sd": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
             "n": len(vals)}
        if c not in (NONE, WITHIN) and not c.startswith(RIDGE):
            diff = vals - np.array([rows[s][NONE][quantity] for s in have])
            d["vs_none"] = {"mean": float(diff.mean()),
                            "sd": float(diff.std(ddof=1)) if len(diff) > 1 else 0.0,
                            "better": int((diff > 0).sum()), "of": len(diff)}
            gaps = {}
            for s in have:
                if WITHIN in rows[s]:
                    gap = rows[s][WITHIN][quantity] - rows[s][NONE][quantity]
                    gaps[s] = (None if abs(gap) < 0.005 else
                               float((rows[s][c][quantity] - rows[s][NONE][quantity]) / gap))
            d["gap_closed"] = gaps
        out[c] = d
    return out


def table(rows: dict, quantity: str, paired: bool = True) -> str:
    """A Markdown table: one row per subject and a pooled row (mean ± sd); one column per
    condition; with ``paired`` (a quantity where higher is better), calibrated columns' pooled
    cell adds the paired difference from no calibration and how many subjects beat it."""
    summary = summarise(rows, quantity)
    conds = list(summary)
    head = "| subject | " + " | ".join(conds) + " |\n|---" + "|---:" * len(conds) + "|\n"
    body = ""
    for s, r in rows.items():
        if quantity in r.get(NONE, {}):
            body += f"| {s} | " + " | ".join(
                f"{r[c][quantity]:.3f}" if quantity in r.get(c, {}) else "" for c in conds) + " |\n"
    pooled = []
    for c in conds:
        d = summary[c]
        cell = f"{d['mean']:.3f} ± {d['sd']:.3f}"
        if paired and "vs_none" in d:
            v = d["vs_none"]
            cell += f" ({v['mean']:+.3f} ± {v['sd']:.3f}; {v['better']}/{v['of']} better)"
        pooled.append(cell)
    return head + body + "| **pooled** | " + " | ".join(pooled) + " |\n"


def plot_curve(path: str, rows: dict, quantity: str, modes, seconds) -> None:
    """R² against calibration seconds (``seconds``, 0 = all, drawn at the subject's total) per
    mode: the mean over subjects (thick) and each subject (thin); no calibration and the
    within-subject reference as horizontal lines."""
    from pinnmsk.plots import _pyplot

    plt = _pyplot()
    summary = summarise(rows, quantity)
    fig, ax = plt.subplots(figsize=(6, 4))
    # "all" is drawn at twice the largest budget (at 1 s where it is the only one)
    xs = [s if s > 0 else max([x for x in seconds if x > 0] or [0.5]) * 2 for s in seconds]
    labels = [f"{s:g}" if s > 0 else "all" for s in seconds]
    for k, mode in enumerate(modes):
        conds = [condition(mode, s) for s in seconds]
        if not all(c in summary for c in conds):
            continue
        for subj, r in rows.items():
            if all(quantity in r.get(c, {}) for c in conds):
                ax.plot(xs, [r[c][quantity] for c in conds], f"C{k}", lw=0.5, alpha=0.5)
        ax.plot(xs, [summary[c]["mean"] for c in conds], f"C{k}o-", lw=2,
                label=f"calibrated: {mode.replace(RIDGE, 'ridge, ')}")
    for name, style in ((NONE, "k--"), (WITHIN, "k:")):
        if name in summary:
            ax.axhline(summary[name]["mean"], color="k", ls=style[1:], lw=1.2,
                       label={"none": "no calibration", "within": "within subject"}[name])
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(xs, labels)
    # R² has no floor: a decoder that fails for one subject would flatten every other line
    means = [d["mean"] for d in summary.values()]
    ax.set_ylim(max(min(means) - 0.2, -1.0), 1.0)
    ax.set_xlabel("calibration recordings [s]")
    ax.set_ylabel(f"test {quantity.replace('_r2', '')} R²")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
