import os
import shutil

import numpy as np
import pytest

from pinnmsk.data import dataset, opensim, spec
from pinnmsk.data.opensim import DataError
from tests.conftest import ROOT

SPEC = ROOT / "data_specs" / "opensim_wrist_sample.toml"


def test_opensim_sample_end_to_end():
    ds = dataset.load_dataset(spec.load_spec(str(SPEC)))
    assert ds.model.n_muscles == 5 and len(ds.trials) == 3
    for tr in ds.trials:
        deg = np.rad2deg(tr.q_rad)
        assert np.all(np.abs(deg) <= 60) and deg.max() - deg.min() > 30
        assert 10 < tr.forces_n.mean() < 100 and tr.forces_n.max() < 1000
        assert tr.excitation.min() >= 0 and tr.excitation.max() <= 1
        assert len(tr.time_s) == 2000
    parts = ds.split()
    assert [t.id for t in parts["test"]] == ["s0/trial_2"]
    assert [t.id for t in parts["train"]] == ["s0/trial_0", "s0/trial_1"]


def test_windows_shapes_and_no_leak():
    ds = dataset.load_dataset(spec.load_spec(str(SPEC)))
    parts = ds.split()
    w = dataset.make_windows(parts["train"], window=20, history=5, stride=2)
    assert w.emg.shape[1:] == (20, 5) and w.q.shape[1:] == (5, 1) and w.forces.shape[1:] == (5, 5)
    assert set(np.unique(w.trial)) == {0, 1}
    # the window end is the last history sample and the last EMG sample
    tr = parts["train"][w.trial[7]]
    np.testing.assert_array_equal(w.q[7, -1], tr.q_rad[w.end_index[7]])
    np.testing.assert_array_equal(w.emg[7, -1], tr.excitation[w.end_index[7]])
    assert np.all(np.diff(w.end_index[w.trial == 0]) == 2)


def test_subject_split_keeps_subjects_apart(tmp_path):
    text = (ROOT / "data_specs" / "synthetic_wrist.toml").read_text()
    head, rest = text.split("[split]")
    text = head + '[split]\nby = "subject"\ntest = ["s2"]\n\n[windows]' + rest.split("[windows]")[1]
    text = text.replace('root = "../data/synthetic_wrist"',
                        f'root = "{ROOT / "data" / "synthetic_wrist"}"')
    p = tmp_path / "s.toml"
    p.write_text(text)
    sp = spec.load_spec(str(p))
    parts = dataset.split_trials(sp, sp.trials)
    assert {t.id.split("/")[0] for t in parts["test"]} == {"s2"}
    assert {t.id.split("/")[0] for t in parts["train"]} == {"s0", "s1"}


# ----------------------------------------------------------------------------- bad data


@pytest.fixture
def lab(tmp_path):
    """A copy of the sample and its spec in tmp_path that a test may break."""
    shutil.copytree(ROOT / "data" / "opensim_wrist_sample", tmp_path / "d")
    text = SPEC.read_text().replace('root = "../data/opensim_wrist_sample"', 'root = "d"')
    p = tmp_path / "spec.toml"
    p.write_text(text)
    return p


def _load(p):
    return dataset.load_dataset(spec.load_spec(str(p)))


def _edit(p, old, new):
    t = p.read_text()
    assert old in t
    p.write_text(t.replace(old, new, 1))


def _rewrite_table(path, fn):
    tab = opensim.read_table(str(path))
    t, v = fn(tab.time.copy(), tab.values.copy())
    if str(path).endswith(".csv"):
        opensim.write_csv(str(path), t, tab.columns, v)
    else:
        opensim.write_opensim(str(path), "x", t, tab.columns, v, tab.in_degrees)


def test_missing_file(lab):
    os.remove(lab.parent / "d" / "trial_1" / "emg.csv")
    with pytest.raises(DataError, match=r"trial_1/emg.csv: file not found"):
        _load(lab)
    with pytest.raises(DataError, match="data spec not found"):
        spec.load_spec(str(lab.parent / "nope.toml"))


def test_unknown_muscle_and_column(lab):
    _edit(lab, 'ECU = "ECU" }', 'ECU = "ECX" }')
    with pytest.raises(DataError, match=r"emg.channels.ECU' maps to unknown muscle 'ECX'"):
        _load(lab)
    _edit(lab, 'ECU = "ECX" }', 'ECU2 = "ECU" }')
    with pytest.raises(DataError, match=r"emg.csv: no EMG column 'ECU2'"):
        _load(lab)
    _edit(lab, 'ECU2 = "ECU" }', 'ECU = "ECU" }')
    _edit(lab, 'coordinates = ["wrist_flex"]', 'coordinates = ["wrist_flx"]')
    with pytest.raises(DataError, match=r"kinematics.mot: no column 'wrist_flx'"):
        _load(lab)


def test_sampling_rate_mismatch(lab):
    _edit(lab, "sampling_rate_hz = 1000.0", "sampling_rate_hz = 2000.0")
    with pytest.raises(DataError, match=r"emg.csv: time column implies 1000 Hz but the spec says 2000"):
        _load(lab)


def test_non_monotonic_time(lab):
    def swap(t, v):
        t[50], t[51] = t[51], t[50]
        return t, v
    _rewrite_table(lab.parent / "d" / "trial_0" / "kinematics.mot", swap)
    with pytest.raises(DataError, match=r"kinematics.mot: time column is not strictly increasing at row 51"):
        _load(lab)


def test_nonfinite_runs_error_or_dropped(lab):
    def poke(t, v):
        v[1000:1040, 2] = np.nan
        return t, v
    _rewrite_table(lab.parent / "d" / "trial_0" / "emg.csv", poke)
    with pytest.raises(DataError, match=r"emg.csv: 40 row\(s\) of EMG contain NaN/Inf, first at row 1001 column 'ECRL'"):
        _load(lab)
    _edit(lab, "drop_nonfinite = false", "drop_nonfinite = true")
    ds = _load(lab)
    # 40 ms of EMG, widened by half a 6 Hz low-pass period (84 ms) each side: 0.92 s .. 1.12 s
    assert ds.dropped_samples == 21
    tr = ds.trials[0]
    assert np.all(np.isfinite(tr.excitation))
    w = dataset.make_windows([tr], window=20, history=5)
    bad = np.flatnonzero(~tr.valid)
    assert len(w) == 2000 - 19 - (bad.max() + 20 - bad.min())
    assert not np.any((w.end_index >= bad.min()) & (w.end_index - 19 <= bad.max()))


def test_too_short_trial(lab):
    _rewrite_table(lab.parent / "d" / "trial_2" / "kinematics.mot", lambda t, v: (t[:15], v[:15]))
    with pytest.raises(DataError, match=r"kinematics.mot: only 15 label samples overlap the EMG"):
        _load(lab)


def test_time_ranges_do_not_overlap(lab):
    _rewrite_table(lab.parent / "d" / "trial_2" / "kinematics.mot", lambda t, v: (t + 100.0, v))
    with pytest.raises(DataError, match=r"do not overlap EMG times"):
        _load(lab)


@pytest.mark.parametrize("old,new,msg", [
    ("sampling_rate_hz = 1000.0", 'sampling_rate_hz = "fast"', r"'emg.sampling_rate_hz' must be a number"),
    ("degree = 5", "degree = 5.5", r"'geometry.degree' must be an integer"),
    ('test = ["s0/trial_2"]', 'test = "s0/trial_2"', r"'split.test' must be a list"),
    ('test = ["s0/trial_2"]', 'test = ["s0/trial_9"]', r"'split.test' names unknown trial"),
    ("drop_nonfinite = false", "drop_nonfinite = 1", r"'windows.drop_nonfinite' must be true or false"),
    ('model = "pendulum"', 'model = "pendulm"', r"'body.model' must be one of"),
    ("mass_kg = 0.45", "mass_kgg = 0.45", r"'body.mass_kgg' is not a known field"),
    ("lowpass_hz = 6.0", "lowpass_hz = 600.0", r"Nyquist"),
    ('normalisation = "robust_max"', 'normalisation = "robust_max"\nrest_v = { FCX = 1e-5 }',
     r"'emg.rest_v' names channel 'FCX'"),
    ('normalisation = "robust_max"', 'normalisation = "robust_max"\nrest_v = { FCR = 1.0 }',
     r"'emg.rest_v' for channel 'FCR' is not below the channel's robust maximum"),
    ('normalisation = "robust_max"', 'normalisation = "mvc"\nmvc_v = { FCR = 2e-4, FCU = 2e-4, '
     'ECRL = 2e-4, ECRB = 2e-4, ECU = 2e-4 }\nrest_v = { FCR = 3e-4 }',
     r"'emg.rest_v' = 0.0003 for channel 'FCR' must be >= 0 and below its emg.mvc_v value"),
])
def test_spec_field_errors(lab, old, new, msg):
    _edit(lab, old, new)
    with pytest.raises(DataError, match=msg) as e:
        _load(lab)
    assert str(lab) in str(e.value) and "\n" not in str(e.value)


def test_mvc_and_rest_normalisation(lab):
    """(envelope − rest) / (MVC − rest), clipped, per channel; channels without a rest value
    keep the plain ratio."""
    mvc = {"FCR": 2.1e-4, "FCU": 1.9e-4, "ECRL": 2.4e-4, "ECRB": 2.4e-4, "ECU": 2.4e-4}
    table = ", ".join(f"{k} = {v}" for k, v in mvc.items())
    _edit(lab, 'normalisation = "robust_max"',
          f'normalisation = "mvc"\nmvc_v = {{ {table} }}\nrest_v = {{ FCR = 9e-6, FCU = 1.1e-5 }}')
    ds = _load(lab)
    tr = ds.trials[0]
    np.testing.assert_allclose(ds.normaliser_v[0], list(mvc.values()))
    np.testing.assert_allclose(ds.rest_v[0], [9e-6, 1.1e-5, 0, 0, 0])
    want = np.clip((tr.raw_envelope - ds.rest_v[0]) / (ds.normaliser_v[0] - ds.rest_v[0]), 0, 1)
    np.testing.assert_allclose(tr.excitation, want, rtol=1e-6, atol=1e-7)
    assert tr.excitation[:, 0].min() == 0.0  # the noise floor is removed, not just scaled


def test_oracle_mvc_spec_recovers_the_excitations():
    """data_specs/opensim_wrist_sample_oracle_mvc.toml: its MVC and rest values turn the
    sample's EMG into its true excitations (up to envelope noise), test trial included."""
    ds = dataset.load_dataset(spec.load_spec(str(ROOT / "data_specs" /
                                                 "opensim_wrist_sample_oracle_mvc.toml")))
    for tr in ds.trials:
        tab = opensim.read_table(str(ROOT / "data" / "opensim_wrist_sample" /
                                     tr.id.split("/")[1] / "excitations.sto"))
        u = np.stack([np.interp(tr.time_s, tab.time, c) for c in
                      tab.select(ds.spec.muscle_names).T], axis=1)
        np.testing.assert_allclose(tr.excitation.mean(0), u.mean(0), rtol=0.1)
        slope = (tr.excitation * u).sum(0) / (u * u).sum(0)
        np.testing.assert_allclose(slope, 1.0, atol=0.12)


def test_npz_and_csv_readers_agree(tmp_path):
    tab = opensim.read_table(str(ROOT / "data" / "opensim_wrist_sample" / "trial_0" / "emg.csv"))
    np.savez(tmp_path / "e.npz", time=tab.time, **{c: tab.column(c) for c in tab.columns})
    z = opensim.read_table(str(tmp_path / "e.npz"))
    assert z.columns == tab.columns
    np.testing.assert_array_equal(z.values, tab.values)
    mot = opensim.read_table(str(ROOT / "data" / "opensim_wrist_sample" / "trial_0" / "kinematics.mot"))
    assert mot.in_degrees and mot.columns == ("wrist_flex",)
    np.testing.assert_allclose(opensim.to_radians(mot, ["wrist_flex"])[:, 0],
                               np.deg2rad(mot.values[:, 0]))
