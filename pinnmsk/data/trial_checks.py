"""Checks across a dataset's trials once they are loaded: the same recording given twice
(:func:`check_duplicates`) and EMG levels that differ between trials by more than a gain or unit
change explains (:func:`check_emg_levels`). Each raises a :class:`~pinnmsk.errors.DataError`
naming the files and the fix.
"""

from __future__ import annotations

import numpy as np

from pinnmsk.data.spec import DataSpec
from pinnmsk.errors import DataError


def check_duplicates(spec: DataSpec, trials) -> None:
    """Two trials with the same EMG, or the same (moving) joint angles, are one recording listed
    twice (a copied export): training on both and testing on either would count it twice, and
    a copied kinematics file pairs one trial's EMG with another's motion."""
    for what, field, arr in (("EMG is", "emg", lambda t: t.raw_envelope),
                             ("joint angles are", "kinematics", lambda t: t.q_rad)):
        seen = {}
        for ts, tr in zip(spec.trials, trials):
            a = arr(tr)
            if field == "kinematics" and np.ptp(a) == 0:
                continue  # a motionless trial may equal another by chance
            key = (a.shape, hash(np.ascontiguousarray(a).tobytes()))
            other = seen.get(key)
            if other is not None and np.array_equal(arr(other[1]), a):
                raise DataError(f"{spec.resolve(getattr(ts, field))}: its {what} identical to "
                                f"trial '{other[0].id}' ({spec.resolve(getattr(other[0], field))})"
                                ": the same recording twice (a copied file?); give each trial "
                                "its own file, or remove one of the two [[trials]]")
            seen[key] = (ts, tr)


LEVEL_RATIO = 30.0  # trial-to-trial EMG level ratio beyond which the units or gain differ


def emg_levels(spec: DataSpec, trials) -> np.ndarray:
    """(N, C): each trial's EMG level per channel, the 95th percentile of its envelope over its
    valid samples [V] (``emg.channels`` order)."""
    chans = list(spec.emg.channels)
    cols = [spec.muscle_names.index(spec.emg.channels[c][0]) for c in chans]
    return np.stack([np.percentile(t.raw_envelope[t.valid][:, cols], 95, axis=0)
                     for t in trials])


def check_emg_levels(spec: DataSpec, trials) -> None:
    """One subject's trials must read their EMG in the same units and gains: a trial whose
    channel reads ``LEVEL_RATIO`` times above or below the median of the subject's trials
    (millivolts among volts, another amplifier gain) would set or miss the normaliser and read
    as excitation ≈ 0 or ≈ 1 everywhere; two channels whose levels are off in opposite
    directions and match the other trials when exchanged were swapped at the amplifier."""
    chans = list(spec.emg.channels)
    levels = emg_levels(spec, trials)  # (N, C)
    for s in sorted({t.subject for t in trials}):
        mine = [i for i, t in enumerate(trials) if t.subject == s]
        if len(mine) < 2:
            continue
        typical = np.median(levels[mine], axis=0)  # (C,)
        ratio = levels[mine] / np.maximum(typical, 1e-30)  # (n, C)
        off = np.abs(np.log(np.maximum(ratio, 1e-30)))
        k = int(np.argmax(off.max(1)))  # the subject's most deviant trial
        i = mine[k]
        tid, path = trials[i].id, spec.resolve(spec.trials[i].emg)
        if len(chans) > 1:
            a, b = sorted(np.argsort(-off[k])[:2])
            swapped = levels[i][[b, a]] / np.maximum(typical[[a, b]], 1e-30)
            if off[k, a] > np.log(3) and off[k, b] > np.log(3) and \
                    np.all(np.abs(np.log(np.maximum(swapped, 1e-30))) < np.log(1.5)):
                raise DataError(
                    f"{path}: EMG columns '{chans[a]}' and '{chans[b]}' of trial '{tid}' read "
                    f"{ratio[k, a]:.2g}x and {ratio[k, b]:.2g}x the subject's typical trial, and "
                    "match it when exchanged: the two electrodes look swapped; exchange the "
                    "columns (the trial's rename_columns) or re-export")
        c = int(np.argmax(off[k]))
        if off[k, c] > np.log(LEVEL_RATIO):
            raise DataError(
                f"{path}: EMG column '{chans[c]}' of trial '{tid}' reads {ratio[k, c]:.3g}x the "
                f"level of subject {spec.trials[i].subject}'s typical trial ({levels[i][c]:.3g} "
                f"vs {typical[c]:.3g}, 95th percentile of the envelope): another unit "
                "(millivolts among volts?) or amplifier gain; convert the file to the "
                "others' units")
