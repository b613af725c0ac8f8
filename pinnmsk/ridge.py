"""Model-free ceilings: how much of a target a linear decoder reads from the recent EMG.

:func:`ridge_r2` on lagged envelopes (:func:`lagged`) gives a linear ceiling from the recent EMG
history; the same decoder on recorded forces shows how much of the angle the forces carry
(through force-length and passive force). :func:`ridge_decoder` is the row every README table
has beside the network, on the same split.
"""

from __future__ import annotations

import numpy as np


def lagged(x: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Rows [x(t), x(t − l₁), …] for t ≥ max lag: (T − L, C · len(lags)) from x (T, C)."""
    top = int(np.max(lags))
    return np.concatenate([x[top - l:len(x) - l] for l in lags], axis=1)


def ridge_r2(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
             alphas=(1e-2, 1.0, 1e2, 1e4)) -> dict:
    """Test R² (mean over the columns of y) of ridge regression, {alpha: R²}.

    Features are standardised on the training rows; ``alpha`` is the ridge penalty on the
    standardised weights. x: (N, D); y: (N, k) or (N,).
    """
    y_train = np.asarray(y_train, float).reshape(len(y_train), -1)
    y_test = np.asarray(y_test, float).reshape(len(y_test), -1)
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-12
    xs, xt = (x_train - mu) / sd, (x_test - mu) / sd
    y_mu = y_train.mean(0)
    gram, rhs = xs.T @ xs, xs.T @ (y_train - y_mu)
    ss = ((y_test - y_test.mean(0)) ** 2).sum(0)
    out = {}
    for a in alphas:
        w = np.linalg.solve(gram + a * np.eye(len(gram)), rhs)
        pred = xt @ w + y_mu
        out[float(a)] = float(np.mean(1.0 - ((pred - y_test) ** 2).sum(0) / ss))
    return out


def lags(history_samples: float, n: int = 10) -> np.ndarray:
    """``n`` lags [samples] spread evenly over ``history_samples`` (0 included, duplicates
    dropped): the lagged copies of the envelope the ridge decoders read."""
    return np.unique(np.round(np.linspace(0, history_samples, n)).astype(int))


def ridge_decoder(train_trials, val_trials, test_trials, lags, signal, goal) -> dict | None:
    """{"alpha", "validation_r2", "test_r2", "chosen_on"}: ridge from ``signal(trial)`` (T, C)
    at ``lags`` samples back to ``goal(trial)`` (T, k), fitted on ``train_trials``, its strength
    chosen on ``val_trials`` (on the training trials when there are none), test R² at that
    strength; None where a trial lacks the signal or the goal."""
    if any(signal(t) is None or goal(t) is None for t in train_trials + val_trials + test_trials):
        return None

    def stack(trials):
        xs = [lagged(signal(t), lags) for t in trials]
        return np.concatenate(xs), np.concatenate([goal(t)[int(np.max(lags)):] for t in trials])

    train_xy = stack(train_trials)
    val = ridge_r2(*train_xy, *stack(val_trials or train_trials))
    alpha = max(val, key=val.get)
    test = ridge_r2(*train_xy, *stack(test_trials), alphas=(alpha,))[alpha]
    return {"alpha": alpha, "validation_r2": val[alpha], "test_r2": test,
            "chosen_on": "validation" if val_trials else "training data (no validation data)"}
