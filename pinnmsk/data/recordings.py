"""One trial's files read into arrays at the label rate (:func:`load_trial`: EMG envelope,
angles, forces, valid samples) and the MVC/rest normalisers from their recordings
(:func:`normalisers`); :func:`pinnmsk.data.loading.load_dataset` composes them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pinnmsk import emg
from pinnmsk.data import opensim
from pinnmsk.data.checks import (EnvelopeFn, _check_angle_units, _check_range, _check_time,
                                 _interp_nonfinite, _nonfinite_runs, _to_label_rate,
                                 check_live_channels, check_moving_angles, check_outliers,
                                 clipped_channels, in_muscle_order, linear_drift, mvc_value,
                                 rest_value)
from pinnmsk.data.dataset import split_trials
from pinnmsk.data.trial_checks import emg_levels
from pinnmsk.errors import DataError
from pinnmsk.data.spec import DataSpec


def _read(spec: DataSpec, path: str, rate_hz: float, rename: dict | None = None
          ) -> opensim.Table:
    """Any data file of the spec; ``rate_hz`` is the row rate of a text export (no time column);
    ``rename`` maps the file's column names to the spec's (a trial's ``rename_columns``)."""
    tab = opensim.read_table(path, rate_hz, spec.text.incomplete_rows, spec.text.columns)
    if rename:
        unknown = [c for c in rename if c not in tab.columns]
        if unknown:
            raise DataError(f"{path}: rename_columns names column '{unknown[0]}', which the file "
                            f"lacks (columns: {', '.join(tab.columns)}); fix the trial's "
                            "rename_columns")
        tab = dataclasses.replace(tab, columns=tuple(rename.get(c, c) for c in tab.columns))
    return tab


def _read_emg(spec: DataSpec, path: str, channels, allow_nonfinite: bool, rename=None):
    """(table, raw (T, C) in ``channels`` order, bad rows (T,)) of one EMG file, checked."""
    tab = _read(spec, path, spec.emg.sampling_rate_hz, rename)
    for c in channels:
        if c not in tab.columns:
            raise DataError(f"{path}: no EMG column '{c}' named in emg.channels "
                            f"(columns: {', '.join(tab.columns)}); fix the data spec")
    _check_time(path, tab.time, spec.emg.sampling_rate_hz, "emg.sampling_rate_hz")
    raw = tab.select(list(channels))
    if spec.emg.outliers == "drop":  # outliers become gaps, handled as NaN samples are
        raw = np.where(emg.amplitude_outliers(np.nan_to_num(raw), spec.emg.outlier_z), np.nan,
                       raw)
        allow_nonfinite = True
    bad = _nonfinite_runs(path, raw, list(channels), "EMG", allow_nonfinite)
    raw = _interp_nonfinite(raw, bad)
    check_live_channels(path, raw, list(channels))
    return tab, check_outliers(spec, path, raw, list(channels)), bad


def load_trial(spec: DataSpec, ts, envelope_fn: EnvelopeFn, min_samples: int):
    allow = spec.windows.drop_nonfinite
    rate = spec.labels.rate_hz
    # --- EMG
    e_path = spec.resolve(ts.emg)
    channels = list(spec.emg.channels)
    e_tab, raw, bad_emg = _read_emg(spec, e_path, channels, allow, ts.rename_columns)
    envelope = envelope_fn(e_path, raw)

    # --- kinematics
    k_path = spec.resolve(ts.kinematics)
    file_rate = spec.labels.file_rate_hz or rate
    k_tab = _read(spec, k_path, file_rate, ts.rename_columns)
    _check_time(k_path, k_tab.time, file_rate,
                "labels.file_rate_hz" if spec.labels.file_rate_hz else "labels.rate_hz")
    units = spec.labels.coordinate_units
    q = k_tab.select(spec.labels.coordinates)
    _check_range(k_path, q, spec.labels.coordinates, "joint angles")
    if units == "file":
        _check_angle_units(k_path, q, spec.labels.coordinates, k_tab.in_degrees,
                           k_tab.time[-1] - k_tab.time[0])
    if units == "degrees" or (units == "file" and k_tab.in_degrees):
        q = np.deg2rad(q)
    if ts.coordinate_sign:
        q = q * np.asarray(ts.coordinate_sign)[None]
    if ts.coordinate_offset_rad:
        q = q + np.asarray(ts.coordinate_offset_rad)[None]
    bad_q = _nonfinite_runs(k_path, q, spec.labels.coordinates, "joint angles", allow)
    if file_rate != rate:
        k_tab, q, bad_q = _to_label_rate(k_tab, q, bad_q, file_rate, rate)

    # --- overlap and common time base (label times inside the EMG range)
    lo = max(e_tab.time[0], k_tab.time[0])
    hi = min(e_tab.time[-1], k_tab.time[-1])
    if hi <= lo:
        raise DataError(f"{k_path}: label times [{k_tab.time[0]:.3f}, {k_tab.time[-1]:.3f}] s do "
                        f"not overlap EMG times [{e_tab.time[0]:.3f}, {e_tab.time[-1]:.3f}] s in "
                        f"{e_path}; check that both files belong to the same trial")
    keep = (k_tab.time >= lo - 1e-9) & (k_tab.time <= hi + 1e-9)
    lost_s = (k_tab.time[-1] - k_tab.time[0]) - (hi - lo)
    if lost_s > max(1.0, 0.1 * (k_tab.time[-1] - k_tab.time[0])):
        raise DataError(f"{k_path}: only {hi - lo:.2f} s of its {k_tab.time[-1] - k_tab.time[0]:.2f}"
                        f" s of labels lie within the EMG recording {e_path} "
                        f"({e_tab.time[0]:.2f}-{e_tab.time[-1]:.2f} s): {lost_s:.2f} s of labels "
                        "would be dropped; check that the files belong together, or trim the "
                        "kinematics to the EMG")
    t = k_tab.time[keep]
    check_moving_angles(k_path, q[keep], spec.labels.coordinates)
    notes = []
    for c, d in zip(spec.labels.coordinates, linear_drift(t, q[keep])):
        if d > 0.4:
            notes.append(f"{k_path}: '{c}' trends steadily by {100 * d:.0f} % of the range of its "
                         "motion over the trial: a drifting goniometer? (angles are trained as "
                         "recorded)")
    unused = (lo - e_tab.time[0]) + (e_tab.time[-1] - hi)
    if unused > max(0.05, 2.0 / rate):
        notes.append(f"{e_path}: {unused:.2f} s of its {e_tab.time[-1] - e_tab.time[0]:.2f} s of "
                     f"EMG lie outside the labels of {k_path} ({k_tab.time[0]:.2f}-"
                     f"{k_tab.time[-1]:.2f} s) and are not used")
    if lost_s > 2.0 / rate:
        notes.append(f"{k_path}: {lost_s:.2f} s of labels lie outside the EMG of {e_path} and "
                     "are not used")
    clipped = clipped_channels(raw)
    if clipped:
        notes.append(f"{e_path}: EMG column(s) {', '.join(channels[c] for c in clipped)} sit at "
                     "their extreme value in over 0.1 % of samples: clipped at the amplifier's "
                     "range? their envelope is underestimated where they saturate")
    if len(t) < min_samples:
        raise DataError(f"{k_path}: only {len(t)} label samples overlap the EMG; a trial needs "
                        f"at least {min_samples} (window length + 1); use longer trials or a "
                        "shorter windows.length_s")
    env_t = np.stack([np.interp(t, e_tab.time, envelope[:, c]) for c in range(envelope.shape[1])],
                     axis=1)
    # An interpolated gap smears over the envelope low-pass's support: widen it by half a
    # low-pass period on each side before marking label samples invalid.
    if bad_emg.any():
        half = int(np.ceil(0.5 * spec.emg.sampling_rate_hz / spec.emg.lowpass_hz))
        bad_emg = np.convolve(bad_emg.astype(float), np.ones(2 * half + 1), mode="same") > 0
    emg_bad_t = np.interp(t, e_tab.time, bad_emg.astype(float)) > 0
    valid = ~(bad_q[keep] | emg_bad_t)
    q = _interp_nonfinite(q[keep], ~valid)

    forces = None
    if ts.forces:
        f_path = spec.resolve(ts.forces)
        f_tab = _read(spec, f_path, rate, ts.rename_columns)
        _check_time(f_path, f_tab.time, rate, "labels.rate_hz")
        fv = f_tab.select(spec.muscle_names)
        _check_range(f_path, fv, spec.muscle_names, "muscle forces")
        bad_f = _nonfinite_runs(f_path, fv, spec.muscle_names, "muscle forces", allow)
        fv = _interp_nonfinite(fv, bad_f)
        forces = np.stack([np.interp(t, f_tab.time, fv[:, j]) for j in range(fv.shape[1])], 1)
        valid &= ~(np.interp(t, f_tab.time, bad_f.astype(float)) > 0)
    return t, in_muscle_order(spec, env_t), q, forces, valid, notes


def _recording_envelope(spec: DataSpec, rel: str, channels, envelope_fn: EnvelopeFn):
    path = spec.resolve(rel)
    _, raw, _ = _read_emg(spec, path, channels, allow_nonfinite=False)
    return path, envelope_fn(path, raw)


def normalisers(spec: DataSpec, subjects, trials, envelope_fn: EnvelopeFn, window: int):
    """(mvc (S, M), rest (S, M), sources) per subject, muscle order.

    MVC: typed ``mvc_v`` (subject's, then dataset-wide) or the peak moving mean of the subject's
    MVC recordings (the largest over recordings that name the channel); without MVC
    (``robust_max``) a high quantile of the subject's training envelopes. Rest: typed
    ``rest_v`` or the mean envelope of the subject's rest recording, else 0.
    """
    e = spec.emg
    chans = list(e.channels)
    fs = e.sampling_rate_hz
    train = split_trials(spec, trials, window)["train"]
    mvc = np.zeros((len(subjects), len(chans)))
    rest = np.zeros((len(subjects), len(chans)))
    sources = {}
    for s, subj in enumerate(subjects):
        sub = spec.subject(subj)
        src = {}
        # rest first: the robust maximum must exceed it
        if sub.rest:
            path, env = _recording_envelope(spec, sub.rest, chans, envelope_fn)
            try:
                rest[s] = rest_value(env, fs, e.rest_skip_s)
            except ValueError as err:
                raise DataError(f"{path}: {err}; use a longer rest recording") from None
            src["rest"] = {c: sub.rest for c in chans}
        else:
            src["rest"] = {}
        for i, c in enumerate(chans):
            if c in sub.rest_v or c in e.rest_v:
                rest[s, i] = sub.rest_v.get(c, e.rest_v.get(c))
                src["rest"][c] = "typed"
            src["rest"].setdefault(c, "none (0)")
        if e.normalisation == "mvc":
            best = np.full(len(chans), -np.inf)
            src["mvc"] = {}
            for rec in sub.mvc:
                path, env = _recording_envelope(spec, rec.file, chans, envelope_fn)
                try:
                    peak = mvc_value(env, fs, e.mvc_window_s)
                except ValueError as err:
                    raise DataError(f"{path}: {err}; use a longer MVC recording or a shorter "
                                    "emg.mvc_window_s") from None
                for c in rec.channels:
                    i = chans.index(c)
                    if peak[i] > best[i]:
                        best[i], src["mvc"][c] = peak[i], rec.file
            for i, c in enumerate(chans):
                if c in sub.mvc_v or (c in e.mvc_v and c not in src["mvc"]):
                    best[i] = sub.mvc_v.get(c, e.mvc_v.get(c))
                    src["mvc"][c] = "typed"
            mine = [t for t in train if t.subject == s]
            if mine:  # an MVC recorded with other gains (another day, another amplifier)
                over = emg_levels(spec, mine).max(0) / best
                if over.max() > 2.0:
                    c = chans[int(np.argmax(over))]
                    raise DataError(
                        f"{spec.resolve(src['mvc'].get(c, spec.path))}: subject '{subj}' "
                        f"exceeds its MVC on channel '{c}' by {over.max():.3g}x in the training "
                        "trials (95th percentile of the envelope): the MVC was recorded with "
                        "other gains or units (another day or amplifier?); record it with the "
                        "trials' settings, type emg.mvc_v, or use emg.normalisation = "
                        "\"robust_max\"")
            mvc[s] = best
        else:
            mine = [t for t in train if t.subject == s] or [t for t in trials if t.subject == s]
            env = np.concatenate([t.raw_envelope[t.valid] for t in mine], axis=0)  # muscle order
            # each channel's column: that of the first muscle it drives
            first = [spec.muscle_names.index(e.channels[c][0]) for c in chans]
            mvc[s] = emg.robust_max(env, e.robust_quantile)[first]
            src["mvc"] = {c: f"robust max ({e.robust_quantile:g} quantile of training EMG)"
                          for c in chans}
        busy = (rest[s] > 0.5 * mvc[s]) & (rest[s] < mvc[s])
        if np.any(busy):
            c = chans[int(np.argmax(busy))]
            raise DataError(f"{spec.resolve(sub.rest) if sub.rest else spec.path}: subject "
                            f"'{subj}' reads {100 * rest[s][busy][0] / mvc[s][busy][0]:.0f} % of "
                            f"its maximum on channel '{c}' at rest: the muscle was not relaxed "
                            "(or the rest and MVC files are mixed up); record rest relaxed, or "
                            "type emg.rest_v")
        low = mvc[s] <= rest[s]
        if np.any(low):
            c = chans[int(np.argmax(low))]
            raise DataError(f"{spec.path}: channel '{c}' of subject '{subj}' has a resting value "
                            f"({rest[s][low][0]:.3g} V) not below its maximum "
                            f"({mvc[s][low][0]:.3g} V, {src['mvc'][c]}); check the rest and MVC "
                            "recordings or values")
        sources[subj] = {"mvc_v": dict(zip(chans, mvc[s].tolist())), "mvc_source": src["mvc"],
                         "rest_v": dict(zip(chans, rest[s].tolist())),
                         "rest_source": src["rest"]}
    # muscles without a channel: normaliser 1, rest 0 (their excitation column stays 0)
    return in_muscle_order(spec, mvc, 1.0), in_muscle_order(spec, rest), sources
