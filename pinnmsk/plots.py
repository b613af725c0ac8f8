"""PNG plots of predictions and training curves (matplotlib, Agg backend; explicit paths).

matplotlib is imported at the first plot, not with the module: the binaries import this module
and a run that fails early, ``--help`` or ``predict`` should not pay its ~0.35 s start-up."""

from __future__ import annotations

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_trial(path: str, trial: dict, coords, muscles, title: str = "") -> None:
    """Predicted vs true joint angles [deg] and muscle forces [N] over one test trial."""
    plt = _pyplot()
    fig = trial_figure(trial, coords, muscles, title)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def trial_figure(trial: dict, coords, muscles, title: str = ""):
    """The figure :func:`plot_trial` saves: one panel per coordinate and per muscle (where the
    trial has forces), each with its own legend; ``trial["q_band"]``/``["f_band"]`` ((lo, hi),
    optional) are drawn as shaded bands labelled ``trial["band_label"]``."""
    plt = _pyplot()
    has_f = trial["f_true"] is not None
    n = len(coords) + (len(muscles) if has_f else 0)
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.8 * n + 0.6), sharex=True, squeeze=False)
    t = trial["time_s"]
    for j, c in enumerate(coords):
        ax = axes[j, 0]
        ax.plot(t, np.rad2deg(trial["q_true"][:, j]), "k", lw=1.2, label="true")
        ax.plot(t, np.rad2deg(trial["q_pred"][:, j]), "C0", lw=1.0, label="predicted")
        if trial.get("q_band") is not None:
            lo, hi = trial["q_band"]
            ax.fill_between(t, np.rad2deg(lo[:, j]), np.rad2deg(hi[:, j]), color="C0",
                            alpha=0.25, lw=0, label=trial.get("band_label", "band"))
        ax.set_ylabel(f"{c} [deg]")
        ax.legend(loc="upper right", fontsize=8)
    if has_f:
        for i, m in enumerate(muscles):
            ax = axes[len(coords) + i, 0]
            ax.plot(t, trial["f_true"][:, i], "k", lw=1.2, label="true")
            ax.plot(t, trial["f_pred"][:, i], "C3", lw=1.0, label="predicted")
            if trial.get("f_band") is not None:
                lo, hi = trial["f_band"]
                ax.fill_between(t, lo[:, i], hi[:, i], color="C3", alpha=0.25, lw=0,
                                label=trial.get("band_label", "band"))
            ax.set_ylabel(f"{m} [N]")
            ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time [s]")
    fig.suptitle(title or trial["id"])
    fig.tight_layout()
    return fig


def loss_curves(history: list, weights=None) -> dict:
    """What :func:`plot_losses` draws, from a run's history: {"epoch": (E,), "loss": (E, K),
    "validation": (E, K) (NaN where none), "selected": (K,) epoch of the lowest validation
    score (None without validation), "terms": {name: (E,) mean over models}} with only the
    terms some model weights above 0 (``weights`` ``{name: scalar or (K,)}``, :mod:`pinnmsk.terms`;
    all terms without it)."""
    from pinnmsk.terms import names

    ep = np.array([h["epoch"] for h in history])
    loss = np.array([h["loss"] for h in history], float)  # (E, K)
    val = np.array([[np.nan if v is None else v
                     for v in h.get("validation", [None] * loss.shape[1])] for h in history],
                   float)
    terms = np.array([h["terms"] for h in history], float)  # (E, K, T)
    used = {n: weights is None or bool(np.any(np.asarray(weights[n]) > 0)) for n in names()}
    selected = [None if np.isnan(val[:, k]).all() else int(ep[np.nanargmin(val[:, k])])
                for k in range(val.shape[1])]
    return {"epoch": ep, "loss": loss, "validation": val, "selected": selected,
            "terms": {n: terms[:, :, j].mean(1) for j, n in enumerate(names()) if used[n]}}


def plot_losses(path: str, history: list, labels=None, weights=None) -> None:
    """Training loss (solid) and validation score (dashed) per model with the epoch selected on
    validation marked, and the unweighted terms the run uses (log scale)."""
    plt = _pyplot()
    c = loss_curves(history, weights)
    ep = c["epoch"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for k in range(c["loss"].shape[1]):
        name = labels[k] if labels else "train"
        axes[0].plot(ep, c["loss"][:, k], color=f"C{k}", label=f"{name} (weighted loss)")
        if np.isfinite(c["validation"][:, k]).any():
            axes[0].plot(ep, c["validation"][:, k], "--", color=f"C{k}",
                         label=f"{labels[k]} (validation score)" if labels else "validation score")
        if c["selected"][k] is not None:
            axes[0].axvline(c["selected"][k], color=f"C{k}", lw=0.8, alpha=0.6)
            axes[0].plot([c["selected"][k]], [c["validation"][ep == c["selected"][k], k][0]],
                         "*", color=f"C{k}", ms=10, label="selected epoch" if k == 0 else None)
    axes[0].set_yscale("log")
    axes[0].set_title("loss per epoch")
    axes[0].legend(fontsize=7)
    for name, v in c["terms"].items():
        axes[1].plot(ep, v, label=name)
    axes[1].set_yscale("log")
    axes[1].set_title("unweighted terms in use (mean over models)")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def moment_figure(time_s: np.ndarray, measured: np.ndarray, predicted: dict, dofs,
                  valid: np.ndarray | None = None, title: str = ""):
    """Measured vs predicted joint moments [N m] of one trial, a panel per dof with its legend;
    ``predicted``: label -> (T, D); samples outside ``valid`` (artefacts) are greyed."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(dofs), 1, figsize=(9, 1.9 * len(dofs) + 0.6), sharex=True,
                             squeeze=False)
    for j, d in enumerate(dofs):
        ax = axes[j, 0]
        ax.plot(time_s, measured[:, j], "k", lw=1.4, label="measured (inverse dynamics)")
        for i, (label, m) in enumerate(predicted.items()):
            ax.plot(time_s, m[:, j], f"C{i}", lw=1.0, label=label)
        if valid is not None and not valid.all():
            lo, hi = ax.get_ylim()
            ax.fill_between(time_s, lo, hi, where=~valid, color="0.85", zorder=0,
                            label="artefact (beyond capacity)")
            ax.set_ylim(lo, hi)
        ax.set_ylabel(f"{d} [N m]")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("time [s]")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
