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
    has_f = trial["f_true"] is not None
    n = len(coords) + (len(muscles) if has_f else 0)
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.8 * n + 0.6), sharex=True, squeeze=False)
    t = trial["time_s"]
    for j, c in enumerate(coords):
        ax = axes[j, 0]
        ax.plot(t, np.rad2deg(trial["q_true"][:, j]), "k", lw=1.2, label="true")
        ax.plot(t, np.rad2deg(trial["q_pred"][:, j]), "C0", lw=1.0, label="predicted")
        ax.set_ylabel(f"{c} [deg]")
        ax.legend(loc="upper right", fontsize=8)
    if has_f:
        for i, m in enumerate(muscles):
            ax = axes[len(coords) + i, 0]
            ax.plot(t, trial["f_true"][:, i], "k", lw=1.2)
            ax.plot(t, trial["f_pred"][:, i], "C3", lw=1.0)
            ax.set_ylabel(f"{m} [N]")
    axes[-1, 0].set_xlabel("time [s]")
    fig.suptitle(title or trial["id"])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_losses(path: str, history: list, labels=None) -> None:
    """Total loss and its unweighted terms per epoch (log scale)."""
    plt = _pyplot()
    from pinnmsk.losses import WEIGHT_NAMES

    ep = [h["epoch"] for h in history]
    loss = np.array([h["loss"] for h in history])  # (E, K)
    terms = np.array([h["terms"] for h in history])  # (E, K, 5)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for k in range(loss.shape[1]):
        axes[0].plot(ep, loss[:, k], label=labels[k] if labels else None)
    axes[0].set_yscale("log")
    axes[0].set_title("weighted loss")
    if labels:
        axes[0].legend(fontsize=8)
    for j, name in enumerate(WEIGHT_NAMES):
        axes[1].plot(ep, np.maximum(terms[:, :, j].mean(1), 1e-12), label=name)
    axes[1].set_yscale("log")
    axes[1].set_title("unweighted terms (mean over models)")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
