"""Checks and reductions of arrays as they are loaded, without files: time columns, non-finite
runs, outliers, dead channels, still angles, angle units and ranges, the envelope filter of a
spec, MVC and rest values, muscle order (checks across trials: :mod:`pinnmsk.data.trial_checks`). Each
check raises a :class:`~pinnmsk.errors.DataError` naming the file, the field and the fix.

Everything here runs once on the host (NumPy).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import emg
from pinnmsk.data import opensim
from pinnmsk.data.spec import DataSpec
from pinnmsk.errors import DataError


def _check_time(path: str, t: np.ndarray, rate_hz: float, what: str) -> None:
    if len(t) < 2:
        raise DataError(f"{path}: {what} has fewer than 2 samples")
    d = np.diff(t)
    if not np.all(np.isfinite(t)) or np.any(d <= 0):
        i = int(np.argmax(~(d > 0))) if np.any(d <= 0) else int(np.argmax(~np.isfinite(t)))
        raise DataError(f"{path}: time column is not strictly increasing at row {i + 1} "
                        f"(t = {t[i]:.6g} then {t[i + 1]:.6g}); sort the rows or remove duplicates")
    measured = 1.0 / np.median(d)
    if abs(measured - rate_hz) > 0.01 * rate_hz:
        raise DataError(f"{path}: time column implies {measured:.6g} Hz but the spec says "
                        f"{rate_hz:g} Hz ({what}); fix the rate in the data spec")


def _nonfinite_runs(path, values, columns, what, allow: bool) -> np.ndarray:
    bad = ~np.isfinite(values)
    if bad.any() and not allow:
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: {int(bad.any(axis=1).sum())} row(s) of {what} contain NaN/Inf, first at row "
            f"{r + 1} column '{columns[c]}'; clean the file or set windows.drop_nonfinite = true "
            "to drop the affected windows")
    return bad.any(axis=1)


def _interp_nonfinite(values: np.ndarray, bad_rows: np.ndarray) -> np.ndarray:
    if not bad_rows.any():
        return values
    out = values.copy()
    idx = np.arange(len(values))
    for c in range(values.shape[1]):
        ok = np.isfinite(values[:, c])
        out[:, c] = np.interp(idx, idx[ok], values[ok, c]) if ok.any() else 0.0
    return out


def check_outliers(spec: DataSpec, path: str, raw: np.ndarray, channels) -> np.ndarray:
    """Raw EMG (T, C) without amplitude outliers: one corrupt sample (1e30) would become the
    channel's normaliser and silence it in every trial. ``emg.outliers = "error"`` stops with the
    channel and row named; ``"clip"`` clips them to ``emg.outlier_z`` robust SDs; ``"drop"``
    (handled in the reader) makes them gaps whose windows are dropped."""
    out = emg.amplitude_outliers(raw, spec.emg.outlier_z)
    if not out.any():
        return raw
    if spec.emg.outliers != "error":  # "clip" (and what "drop" left: nothing)
        return emg.clip_outliers(np.clip(raw, -emg.FLOAT32_MAX, emg.FLOAT32_MAX),
                                 spec.emg.outlier_z)
    r, c = np.argwhere(out)[0]
    raise DataError(f"{path}: EMG column '{channels[c]}' has {int(out[:, c].sum())} outlier "
                    f"sample(s), first at data row {r + 1} ({raw[r, c]:.3g}, beyond "
                    f"{spec.emg.outlier_z:g} robust SDs of the channel or float32's range); "
                    "repair the recording or set emg.outliers = \"clip\" or \"drop\"")


class EnvelopeFn:
    """The spec's EMG → envelope [V] map for a whole recording (T, C) → (T, C).

    ``emg.envelope = "causal"`` (default): the causal filter from a zero state, exactly what
    :class:`pinnmsk.streaming.Streamer` computes online; ``"zero_phase"``: the offline
    forward-backward filter (looks up to ~0.2 s ahead; an explicit offline option).
    ``emg.input = "envelope"``: the file already holds envelopes; they pass unfiltered (no filter
    is designed, so the filter settings need not suit the file's rate; ``filter`` is None).
    """

    def __init__(self, spec: DataSpec):
        e = spec.emg
        self.mode = "envelope_input" if e.input == "envelope" else e.envelope
        self.filter = None
        if self.mode != "envelope_input":
            cfg = emg.EnvelopeConfig(fs_hz=e.sampling_rate_hz, bandpass_hz=e.bandpass_hz,
                                     bandpass_order=e.bandpass_order, lowpass_hz=e.lowpass_hz,
                                     lowpass_order=e.lowpass_order)
            try:
                self.filter = emg.EnvelopeFilter.from_config(cfg)
            except ValueError as err:
                raise DataError(f"{spec.path}: field 'emg' filter settings: {err}") from None
        f = self.filter
        fn = {"causal": lambda x: f.causal(x, validate=False),
              "zero_phase": lambda x: f.offline(x, validate=False)}.get(self.mode)
        self._fn = None if fn is None else jax.jit(fn)

    def __call__(self, path: str, raw: np.ndarray) -> np.ndarray:
        if self._fn is None:
            return np.maximum(raw, 0.0)
        if self.mode == "zero_phase" and len(raw) <= max(
                emg.padlen(self.filter.bandpass_sos), emg.padlen(self.filter.lowpass_sos)) + 1:
            raise DataError(f"{path}: only {len(raw)} EMG samples, too short for the zero-phase "
                            "filters; use longer trials or emg.envelope = \"causal\"")
        if self.mode == "causal":
            # the causal filter is a scan in time, so zeros after the recording leave its
            # outputs unchanged (to the bit): recordings of many lengths share a few compiled
            # programs (one per length cost ~0.2 s of compiling against ~4 ms of filtering)
            x = np.zeros((padded_length(len(raw)),) + np.shape(raw)[1:], np.float32)
            x[:len(raw)] = raw
        else:
            x = np.asarray(raw, np.float32)
        return np.asarray(self._fn(jnp.asarray(x)), np.float64)[:len(raw)]


def padded_length(n: int) -> int:
    """The length ≥ ``n`` a causal envelope is computed at: ``n`` rounded up to a multiple of
    1024 samples, or from 8192 on of an eighth of the next power of two (at most 25 % longer):
    eight compiled lengths per octave."""
    q = 1 << max(10, n.bit_length() - 3)
    return -(-n // q) * q


def check_live_channels(path: str, raw: np.ndarray, channels) -> None:
    """A channel whose samples are all equal (a dead or unplugged electrode, a zero-filled
    export) carries no EMG: its muscle would read as resting throughout."""
    flat = np.ptp(raw, axis=0) == 0
    if flat.any():
        c = int(np.argmax(flat))
        raise DataError(f"{path}: EMG column '{channels[c]}' is flat (every sample "
                        f"{raw[0, c]:.3g}): a dead or unplugged electrode; repair the recording or "
                        "remove this trial (or recording) from the spec")


def check_moving_angles(path: str, q: np.ndarray, columns) -> None:
    """A coordinate that never moves over a trial (a disconnected goniometer, a zero-filled
    column) would train the angle head on a constant."""
    still = np.nanmax(q, axis=0) - np.nanmin(q, axis=0) == 0
    if still.any():
        c = int(np.argmax(still))
        raise DataError(f"{path}: coordinate '{columns[c]}' is constant over the whole trial "
                        f"({q[0, c]:.4g} rad): a disconnected goniometer or an empty column; "
                        "repair the file or remove this trial")


def linear_drift(time_s: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(n,) each coordinate's straight-line trend over the trial (least squares; slope ×
    duration) as a share of the range of what is left around it. A drifting goniometer adds a
    steady trend; a task's own motion has little (at most 0.20 over the shipped samples'
    trials)."""
    x = time_s - time_s.mean()
    a = np.stack([np.ones_like(x), x], axis=1)
    coef, *_ = np.linalg.lstsq(a, q, rcond=None)
    rest = q - a @ coef
    span = rest.max(axis=0) - rest.min(axis=0)
    return np.abs(coef[1]) * (time_s[-1] - time_s[0]) / np.maximum(span, 1e-12)


def clipped_channels(raw: np.ndarray, share: float = 1e-3) -> list:
    """Indices of the channels (T, C) that sit at their largest or smallest value in more than
    ``share`` of samples (and at least 5): saturation at the amplifier's range."""
    n = max(5, int(share * len(raw)))
    return [c for c in range(raw.shape[1])
            if max((raw[:, c] == raw[:, c].max()).sum(), (raw[:, c] == raw[:, c].min()).sum()) > n]


def _check_range(path: str, values: np.ndarray, columns, what: str) -> None:
    """Values beyond float32's range (they would train as Inf and read as divergence)."""
    big = np.isfinite(values) & (np.abs(values) > emg.FLOAT32_MAX)
    if big.any():
        r, c = np.argwhere(big)[0]
        raise DataError(f"{path}: {what} column '{columns[c]}' holds {values[r, c]:.3g} at data "
                        "row {}, beyond float32's range; repair the file".format(r + 1))


def _check_angle_units(path: str, q: np.ndarray, columns, in_degrees: bool,
                       duration_s: float = np.inf) -> None:
    """A file that says degrees but stays within ±2π of them over a whole trial (of 2 s or more)
    holds radians, and one that says radians but exceeds π (no joint turns beyond 180°; ±7.8°
    read as radians is ±449°) holds degrees: a silent 57x error otherwise."""
    finite = np.where(np.isfinite(q), q, np.nan)
    peak = np.nanmax(np.abs(finite), axis=0)
    for c, name in enumerate(columns):
        if in_degrees and 0 < peak[c] <= 2 * np.pi and duration_s >= 2.0:
            raise DataError(f"{path}: coordinate '{name}' is labelled degrees (inDegrees=yes) but "
                            f"never exceeds {peak[c]:.3g} of them: it looks like radians; fix the "
                            "header, or set labels.coordinate_units = \"radians\" (or "
                            "\"degrees\" if the motion really is that small)")
        if not in_degrees and peak[c] > np.pi:
            raise DataError(f"{path}: coordinate '{name}' is in radians (inDegrees=no) but reaches "
                            f"{peak[c]:.4g} ({np.rad2deg(peak[c]):.0f} deg, beyond any joint's "
                            "range): it looks like degrees; fix the header or set "
                            "labels.coordinate_units = \"degrees\"")


def check_within_geometry(path: str, q: np.ndarray, columns, centre_rad, scale_rad) -> None:
    """Angles (T, n) [rad] far outside the range the muscle geometry was fitted over (its
    polynomial's centre ± scale: the MuscleAnalysis table's range) would be extrapolated into
    meaningless lengths (a degree read as a radian lands there): stop, naming the coordinate."""
    lo, hi = np.nanmin(q, axis=0), np.nanmax(q, axis=0)
    centre, scale = np.asarray(centre_rad, float), np.asarray(scale_rad, float)
    for c, name in enumerate(columns):
        a, b = centre[c] - scale[c], centre[c] + scale[c]
        margin = 0.5 * (b - a)
        if lo[c] < a - margin or hi[c] > b + margin:
            raise DataError(f"{path}: coordinate '{name}' spans {lo[c]:.3g}..{hi[c]:.3g} rad "
                            f"({np.rad2deg(lo[c]):.0f}..{np.rad2deg(hi[c]):.0f} deg), far outside "
                            f"the range the muscle geometry covers ({a:.3g}..{b:.3g} rad): "
                            "degrees read as radians (or the reverse), a sign or offset "
                            "(coordinate_sign, coordinate_offset_rad), or a length table that "
                            "does not cover the motion; fix the file's units or the table")


def _to_label_rate(tab: opensim.Table, q: np.ndarray, bad: np.ndarray, file_rate: float,
                   rate: float):
    """Angles recorded at ``file_rate`` as labels at ``rate``: the mean over each label period
    (a box anti-alias filter centred on the label time), sampled every label period."""
    k = max(1, int(round(file_rate / rate)))
    c = np.cumsum(np.vstack([np.zeros((1, q.shape[1])), np.where(bad[:, None], 0.0, q)]), 0)
    nb = np.concatenate([[0], np.cumsum(bad)])
    idx = np.arange(k // 2, len(q) - (k - k // 2) + 1, k)
    lo, hi = idx - k // 2, idx - k // 2 + k
    mean = (c[hi] - c[lo]) / k
    bad_out = (nb[hi] - nb[lo]) > 0
    t = tab.time[idx]
    return dataclasses.replace(tab, time=t), mean, bad_out


def in_muscle_order(spec: DataSpec, per_channel: np.ndarray, missing: float = 0.0) -> np.ndarray:
    """Columns (..., C) in ``emg.channels`` order → (..., M) in muscle order: a channel's column
    for every muscle it drives, ``missing`` for a muscle without a channel."""
    chans = list(spec.emg.channels)
    owner = spec.channel_of
    cols = [per_channel[..., chans.index(owner[m])] if m in owner
            else np.full(per_channel.shape[:-1], missing, per_channel.dtype)
            for m in spec.muscle_names]
    return np.stack(cols, axis=-1)


def mvc_value(envelope: np.ndarray, rate_hz: float, window_s: float) -> np.ndarray:
    """MVC value per channel (C,): the peak of the envelope's moving mean over ``window_s``."""
    n = max(1, int(round(window_s * rate_hz)))
    if len(envelope) < n:
        raise ValueError(f"the recording ({len(envelope)} samples) is shorter than the "
                         f"{window_s:g} s MVC window")
    c = np.cumsum(np.vstack([np.zeros((1, envelope.shape[1])), envelope]), axis=0)
    return ((c[n:] - c[:-n]) / n).max(axis=0)


def rest_value(envelope: np.ndarray, rate_hz: float, skip_s: float) -> np.ndarray:
    """Resting value per channel (C,): the envelope's mean after ``skip_s`` of filter settling."""
    k = int(round(skip_s * rate_hz))
    if len(envelope) <= k:
        raise ValueError(f"the recording ({len(envelope)} samples) is not longer than the "
                         f"{skip_s:g} s settling time (emg.rest_skip_s)")
    return envelope[k:].mean(axis=0)
