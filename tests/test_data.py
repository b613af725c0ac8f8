import dataclasses
import os

import numpy as np
import pytest
import scipy.signal

from pinnmsk.data import dataset, loading, opensim, osim_model, spec, writing
from pinnmsk.errors import DataError
from tests.conftest import ROOT, V2, V2_SPEC

def test_v2_sample_end_to_end():
    """The shipped v2 spec: per-subject .osim muscles, MuscleAnalysis geometry within 0.5 mm of
    the MomentArm tables, MVC/rest-normalised excitations, a time-blocked validation split."""
    ds = loading.load_dataset(spec.load_spec(str(V2_SPEC)))
    assert ds.models.muscles.f_max_n.shape == (2, 5) and len(ds.trials) == 8
    # S2's lab model has its own (scaled) fibre lengths: the subjects' models differ
    assert not np.allclose(ds.models.muscles.l_opt_m[0], ds.models.muscles.l_opt_m[1])
    np.testing.assert_allclose(ds.model_of(0).muscles.f_max_n, [407, 479, 337, 252, 192])
    for subj in ("S1", "S2"):
        err = ds.geometry_report[subj]["moment_arm_max_error_m"]["wrist_flex"]
        assert 0 < err < 0.5e-3
        assert ds.normalisation[subj]["mvc_source"]["FCR"] == f"{subj}/mvc_flexion.npz"
        assert ds.normalisation[subj]["mvc_source"]["ECU"] == f"{subj}/mvc_extension.npz"
    for tr in ds.trials:
        deg = np.rad2deg(tr.q_rad)
        assert np.all(np.abs(deg) <= 70) and deg.max() - deg.min() > 30
        assert tr.excitation.min() >= 0 and tr.excitation.max() <= 1
        assert len(tr.time_s) == 3000
    parts = ds.split()
    assert [t.id for t in parts["test"]] == ["S1/trial_3", "S2/trial_3"]
    assert [t.id for t in parts["validation"]] == [f"{s}/trial_{k}@val" for s in ("S1", "S2")
                                                   for k in range(3)]
    for tr, val in zip(parts["train"], parts["validation"]):
        # validation is the last 20 %; the training part ends one window (1 s) before it
        assert len(val.time_s) == 600
        assert val.time_s[0] - tr.time_s[-1] >= ds.spec.windows.length_s


def test_windows_shapes_and_no_leak(lab):
    ds = _load(lab)
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
    parts = dataset.split_trials(dataclasses.replace(
        sp, split=dataclasses.replace(sp.split, validation_fraction=0.0)), sp.trials)
    assert {t.id.split("/")[0] for t in parts["test"]} == {"s2"}
    assert {t.id.split("/")[0] for t in parts["train"]} == {"s0", "s1"}


# ----------------------------------------------------------------------------- bad data


def _load(p):
    return loading.load_dataset(spec.load_spec(str(p)))


def _edit(p, old, new):
    t = p.read_text()
    assert old in t
    p.write_text(t.replace(old, new, 1))


def _rewrite_table(path, fn):
    tab = opensim.read_table(str(path))
    t, v = fn(tab.time.copy(), tab.values.copy())
    if str(path).endswith(".npz"):
        np.savez(str(path), time=t, **{c: v[:, i] for i, c in enumerate(tab.columns)})
    elif str(path).endswith(".csv"):
        writing.write_csv(str(path), t, tab.columns, v)
    else:
        writing.write_opensim(str(path), "x", t, tab.columns, v, tab.in_degrees)


def test_missing_file(lab):
    os.remove(lab.parent / "d" / "S1" / "trial_1" / "emg.npz")
    with pytest.raises(DataError, match=r"trial_1/emg.npz: file not found"):
        _load(lab)
    with pytest.raises(DataError, match="data spec not found"):
        spec.load_spec(str(lab.parent / "nope.toml"))


def test_unknown_muscle_and_column(lab):
    _edit(lab, 'ECU = "ECU" }', 'ECU = "ECX" }')
    with pytest.raises(DataError, match=r"emg.channels.ECU' maps to unknown muscle 'ECX'"):
        _load(lab)
    _edit(lab, 'ECU = "ECX" }', 'ECU = "ECU" }')
    z = dict(np.load(lab.parent / "d" / "S1" / "trial_1" / "emg.npz"))
    z["ECU2"] = z.pop("ECU")
    np.savez(lab.parent / "d" / "S1" / "trial_1" / "emg.npz", **z)
    with pytest.raises(DataError, match=r"trial_1/emg.npz: no EMG column 'ECU' named in emg"):
        _load(lab)
    _edit(lab, 'coordinates = ["wrist_flex"]', 'coordinates = ["wrist_flx"]')
    with pytest.raises(DataError, match=r"range_of_motion.mot: no coordinate column 'wrist_flx'"):
        _load(lab)


def test_sampling_rate_mismatch(lab):
    _edit(lab, "sampling_rate_hz = 1000.0", "sampling_rate_hz = 2000.0")
    with pytest.raises(DataError, match=r"\.npz: time column implies 1000 Hz but the spec says 2000"):
        _load(lab)


def test_non_monotonic_time(lab):
    def swap(t, v):
        t[50], t[51] = t[51], t[50]
        return t, v
    _rewrite_table(lab.parent / "d" / "S1" / "trial_0" / "kinematics.mot", swap)
    with pytest.raises(DataError, match=r"kinematics.mot: time column is not strictly increasing at row 51"):
        _load(lab)


def test_nonfinite_runs_error_or_dropped(lab):
    def poke(t, v):
        v[1000:1040, 2] = np.nan
        return t, v
    _rewrite_table(lab.parent / "d" / "S1" / "trial_0" / "emg.npz", poke)
    with pytest.raises(DataError, match=r"emg.npz: 40 row\(s\) of EMG contain NaN/Inf, first at row 1001 column 'ECRL'"):
        _load(lab)
    _edit(lab, "stride = 1", "stride = 1\ndrop_nonfinite = true")
    ds = _load(lab)
    # 40 ms of EMG, widened by half a 6 Hz low-pass period (84 ms) each side: 0.92 s .. 1.12 s
    assert ds.dropped_samples == 21
    tr = ds.trials[0]
    assert np.all(np.isfinite(tr.excitation))
    w = dataset.make_windows([tr], window=20, history=5)
    bad = np.flatnonzero(~tr.valid)
    assert len(w) == 3000 - 19 - (bad.max() + 20 - bad.min())
    assert not np.any((w.end_index >= bad.min()) & (w.end_index - 19 <= bad.max()))


def test_too_short_trial(lab):
    _rewrite_table(lab.parent / "d" / "S1" / "trial_3" / "kinematics.mot",
                   lambda t, v: (t[:15], v[:15]))
    with pytest.raises(DataError, match=r"kinematics.mot: only 15 label samples overlap the EMG"):
        _load(lab)


def test_time_ranges_do_not_overlap(lab):
    _rewrite_table(lab.parent / "d" / "S1" / "trial_3" / "kinematics.mot",
                   lambda t, v: (t + 100.0, v))
    with pytest.raises(DataError, match=r"do not overlap EMG times"):
        _load(lab)


@pytest.mark.parametrize("old,new,msg", [
    ("sampling_rate_hz = 1000.0", 'sampling_rate_hz = "fast"', r"'emg.sampling_rate_hz' must be a number"),
    ("degree = 5", "degree = 5.5", r"'geometry.degree' must be an integer"),
    ('test = ["S1/trial_3"]', 'test = "S1/trial_3"', r"'split.test' must be a list"),
    ('test = ["S1/trial_3"]', 'test = ["S1/trial_9"]', r"'split.test' names unknown trial"),
    ("stride = 1", "stride = 1\ndrop_nonfinite = 1", r"'windows.drop_nonfinite' must be true or false"),
    ('model = "pendulum"', 'model = "pendulm"', r"'body.model' must be one of"),
    ("mass_kg = 0.45", "mass_kgg = 0.45", r"'body.mass_kgg' is not a known field"),
    ("mass_kg = 0.45", "mass_kg = -0.45", r"'body.mass_kg' = -0.45 must be a finite value >= 0"),
    ("lowpass_hz = 6.0", "lowpass_hz = 600.0", r"Nyquist"),
    ('envelope = "causal"', 'envelope = "acausal"', r"'emg.envelope' must be one of"),
    ('rest_skip_s = 1.0', 'rest_skip_s = 1.0\nrest_v = { FCX = 1e-5 }',
     r"'emg.rest_v' names channel 'FCX'"),
    ('rest_skip_s = 1.0', 'rest_skip_s = 1.0\nrest_v = { FCR = 1.0 }',
     r"channel 'FCR' of subject 'S1' has a resting value \(1 V\) not below its maximum"),
    ('validation_fraction = 0.2', 'validation_fraction = 0.95', r"'split.validation_fraction'"),
    ('mvc = [{ file = "S1/mvc_flexion.npz", channels = ["FCR", "FCU"] },',
     'mvc = [{ file = "S1/mvc_flexion.npz", channels = ["FCR"] },',
     r"channel 'FCU' of subject 'S1' has no MVC value: name an MVC recording"),
    ('channels = ["FCR", "FCU"]', 'channels = ["FCR", "FCX"]',
     r"'subjects\[0\].mvc\[0\].channels' names channel 'FCX'"),
    ('file = "S1/mvc_flexion.npz"', 'file = "S1/mvc_flexion_missing.npz"',
     r"mvc_flexion_missing.npz: file not found"),
    ('name = "S1"\nosim', 'name = "S9"\nosim', r"'subjects\[0\].name' = 'S9' is no subject"),
    ('[[muscles]]\nname = "ECU"', '[[muscles]]\nname = "ECX"',
     r"(maps to unknown muscle)"),
    ('motion = "S1/muscle_analysis/range_of_motion.mot"\n', '',
     r"Length.sto: the table is indexed by 'time' and has no coordinate column \(wrist_flex\); "
     r"set geometry.motion"),
])
def test_spec_field_errors(lab, old, new, msg):
    _edit(lab, old, new)
    with pytest.raises(DataError, match=msg) as e:
        _load(lab)
    assert "\n" not in str(e.value)


def test_osim_errors(lab):
    """A muscle the model lacks, and one of a class pinnmsk does not read: one line each."""
    osim = lab.parent / "d" / "S1" / "S1_scaled.osim"
    text = osim.read_text()
    osim.write_text(text.replace('name="ECU"', 'name="ECU_r"'))
    with pytest.raises(DataError, match=r"S1_scaled.osim: the model has no muscle named 'ECU'"):
        _load(lab)
    osim.write_text(text.replace('<Millard2012EquilibriumMuscle name="ECU">',
                                 '<RigidTendonMuscle name="ECU">').replace(
        "</Millard2012EquilibriumMuscle>\n\t\t\t</objects>", "</RigidTendonMuscle>\n\t\t\t</objects>"))
    with pytest.raises(DataError, match=r"muscle 'ECU' is a RigidTendonMuscle, which pinnmsk "
                                        r"does not read"):
        _load(lab)


def test_osim_reader_classes(tmp_path):
    """Millard2012, DeGrooteFregly2016 and Thelen2003 muscles read alike (SI units)."""
    body = "".join(f"<{cls} name=\"m{i}\"><max_isometric_force>{100 + i}</max_isometric_force>"
                   f"<optimal_fiber_length>0.1</optimal_fiber_length><tendon_slack_length>0.2"
                   f"</tendon_slack_length><pennation_angle_at_optimal>0.1"
                   f"</pennation_angle_at_optimal></{cls}>"
                   for i, cls in enumerate(osim_model.OSIM_MUSCLE_CLASSES))
    p = tmp_path / "m.osim"
    p.write_text(f"<OpenSimDocument><Model><ForceSet><objects>{body}</objects></ForceSet></Model>"
                 "</OpenSimDocument>")
    got = osim_model.read_osim_muscles(str(p), ["m0", "m1", "m2"])
    assert [got[f"m{i}"]["f_max_n"] for i in range(3)] == [100.0, 101.0, 102.0]
    assert got["m2"]["class"] == "Thelen2003Muscle" and got["m1"]["l_ts_m"] == 0.2


def test_length_table_and_motion_must_match(lab):
    mot = lab.parent / "d" / "S1" / "muscle_analysis" / "range_of_motion.mot"
    _rewrite_table(mot, lambda t, v: (t[:-5], v[:-5]))
    with pytest.raises(DataError, match=r"Length.sto: 121 rows .* do not match the 116 rows of "
                                        r"its motion"):
        _load(lab)


def test_grid_table_honours_in_degrees(tmp_path):
    """A grid Length table over the coordinate in degrees gives the same moment arms as one in
    radians (not 57x too small)."""
    tab = opensim.read_table(str(V2 / "S1" / "muscle_analysis" / "S1_MuscleAnalysis_Length.sto"))
    mot = opensim.read_table(str(V2 / "S1" / "muscle_analysis" / "range_of_motion.mot"))
    q_deg = mot.values[:, 0]
    for deg in (True, False):
        writing.write_opensim(str(tmp_path / "g.sto"), "Length", q_deg if deg else np.deg2rad(q_deg),
                              tab.columns, tab.values, in_degrees=deg, time_label="wrist_flex")
        q = osim_model.grid_coordinates(opensim.read_table(str(tmp_path / "g.sto")),
                                     ["wrist_flex"], None)
        np.testing.assert_allclose(q[:, 0], np.deg2rad(q_deg), rtol=1e-7)


def _scipy_envelope(raw, fs=1000.0):
    """The causal envelope with SciPy alone (independent of pinnmsk.emg)."""
    bp = scipy.signal.butter(4, [20.0, 450.0], btype="bandpass", fs=fs, output="sos")
    lp = scipy.signal.butter(2, 6.0, btype="lowpass", fs=fs, output="sos")
    return scipy.signal.sosfilt(lp, np.abs(scipy.signal.sosfilt(bp, raw, axis=0)), axis=0)


@pytest.mark.parametrize("mode", ["linear", "quadrature"])
def test_mvc_and_rest_from_recordings_match_scipy(lab, mode):
    """Excitation = (envelope − rest)/(MVC − rest) (or √(env² − rest²)/√(MVC² − rest²)): MVC the
    peak 0.5-s moving mean of the MVC recording's envelope, rest the mean envelope of the rest
    recording after 1 s; computed here with scipy.signal and NumPy only, to 1e-4."""
    _edit(lab, "rest_skip_s = 1.0", f'rest_skip_s = 1.0\nrest_subtraction = "{mode}"')
    ds = _load(lab)
    d = lab.parent / "d" / "S1"
    chans = ["FCR", "FCU", "ECRL", "ECRB", "ECU"]
    rec = lambda f: np.load(d / f)
    env = lambda f: _scipy_envelope(np.stack([rec(f)[c].astype(float) for c in chans], 1))
    rest = env("rest.npz")[1000:].mean(0)
    mvc = np.zeros(5)
    for f, idx in (("mvc_flexion.npz", [0, 1]), ("mvc_extension.npz", [2, 3, 4])):
        e = env(f)
        mov = np.array([np.convolve(e[:, c], np.ones(500) / 500, mode="valid").max()
                        for c in range(5)])
        mvc[idx] = mov[idx]
    np.testing.assert_allclose(ds.rest_v[0], rest, rtol=1e-4)
    np.testing.assert_allclose(ds.normaliser_v[0], mvc, rtol=1e-4)
    raw = np.load(d / "trial_0" / "emg.npz")
    e = _scipy_envelope(np.stack([raw[c].astype(float) for c in chans], 1))[::10]
    if mode == "linear":
        want = np.clip((e - rest) / (mvc - rest), 0.0, 1.0)
    else:
        want = np.clip(np.sqrt(np.maximum(e**2 - rest**2, 0)) / np.sqrt(mvc**2 - rest**2), 0, 1)
    np.testing.assert_allclose(ds.trials[0].excitation, want, atol=1e-4)


def test_normalised_excitations_track_the_true_ones():
    """MVC/rest-normalised causal excitations of the v2 sample against its true excitations
    (excitations.sto), pooled over each channel's trials: r >= 0.75."""
    ds = loading.load_dataset(spec.load_spec(str(V2_SPEC)))
    est, true = [], []
    for tr in ds.trials:
        tab = opensim.read_table(str(V2 / tr.id / "excitations.sto"))
        true.append(np.stack([np.interp(tr.time_s, tab.time, c)
                              for c in tab.select(ds.spec.muscle_names).T], 1))
        est.append(tr.excitation)
    est, true = np.concatenate(est), np.concatenate(true)
    r = [np.corrcoef(est[:, j], true[:, j])[0, 1] for j in range(5)]
    assert min(r) >= 0.75, r
    # the level is right too (MVC fixes it, the noise floor removed in quadrature): the
    # excitation regressed on the truth has slope 0.85..1.0 per channel
    slope = (est * true).sum(0) / (true * true).sum(0)
    assert np.all((slope > 0.85) & (slope < 1.0)), slope


def test_typed_mvc_and_rest_values(lab):
    """MVC and rest values can still be typed in (dataset-wide), instead of recordings."""
    mvc = {"FCR": 4.1e-4, "FCU": 4.5e-4, "ECRL": 4.0e-4, "ECRB": 3.4e-4, "ECU": 2.5e-4}
    table = ", ".join(f"{k} = {v}" for k, v in mvc.items())
    t = lab.read_text()
    t = t.replace('rest = "S1/rest.npz"\n', "").replace(
        'mvc = [{ file = "S1/mvc_flexion.npz", channels = ["FCR", "FCU"] },\n'
        '       { file = "S1/mvc_extension.npz", channels = ["ECRL", "ECRB", "ECU"] }]\n', "")
    t = t.replace("rest_skip_s = 1.0", f"rest_skip_s = 1.0\nmvc_v = {{ {table} }}\n"
                                       "rest_v = { FCR = 1.3e-5, FCU = 1.3e-5 }")
    lab.write_text(t)
    ds = _load(lab)
    tr = ds.trials[0]
    np.testing.assert_allclose(ds.normaliser_v[0], list(mvc.values()))
    np.testing.assert_allclose(ds.rest_v[0], [1.3e-5, 1.3e-5, 0, 0, 0])
    e, r, m = tr.raw_envelope, ds.rest_v[0], ds.normaliser_v[0]
    want = np.clip(np.sqrt(np.maximum(e**2 - r**2, 0)) / np.sqrt(m**2 - r**2), 0, 1)
    np.testing.assert_allclose(tr.excitation, want, rtol=1e-5, atol=1e-7)
    assert ds.normalisation["S1"]["mvc_source"]["FCR"] == "typed"


def test_envelope_input_is_not_filtered(lab, tmp_path):
    """emg.input = "envelope": the file's values are the envelope (no band-pass, no low-pass)."""
    d = lab.parent / "d" / "S1" / "trial_0"
    z = np.load(d / "emg.npz")
    env = {c: np.abs(np.sin(np.arange(len(z["time"])) / 300.0)) * 1e-4 for c in z.files
           if c != "time"}
    np.savez(d / "emg.npz", time=z["time"], **env)
    _edit(lab, 'envelope = "causal"', 'envelope = "causal"\ninput = "envelope"')
    t = lab.read_text()
    t = t.replace('rest = "S1/rest.npz"\n', "").replace("normalisation = \"mvc\"",
                                                        "normalisation = \"mvc\"\nmvc_v = { FCR = 2e-4, FCU = 2e-4, ECRL = 2e-4, ECRB = 2e-4, ECU = 2e-4 }")
    t = t.replace('mvc = [{ file = "S1/mvc_flexion.npz", channels = ["FCR", "FCU"] },\n'
                  '       { file = "S1/mvc_extension.npz", channels = ["ECRL", "ECRB", "ECU"] }]\n', "")
    lab.write_text(t)
    ds = _load(lab)
    np.testing.assert_allclose(ds.trials[0].raw_envelope[:, 0], env["FCR"][::10], rtol=1e-6)


def test_c3d_analog_reader(tmp_path):
    """EMG from a C3D file's analog channels, by label, at the file's analog rate."""
    import ezc3d

    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [100]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("marker",)
    c["data"]["points"] = np.ones((4, 1, 30))
    c["parameters"]["ANALOG"]["LABELS"]["value"] = ("FCR", "ECU")
    c["parameters"]["ANALOG"]["RATE"]["value"] = [1000]
    x = np.random.default_rng(0).normal(0, 1e-4, (1, 2, 300))
    c["data"]["analogs"] = x
    c.write(str(tmp_path / "t.c3d"))
    tab = opensim.read_table(str(tmp_path / "t.c3d"))
    assert tab.columns == ("FCR", "ECU")
    np.testing.assert_allclose(tab.time[:3], [0.0, 0.001, 0.002])
    np.testing.assert_allclose(tab.column("ECU"), x[0, 1], rtol=1e-5, atol=1e-12)
    (tmp_path / "bad.c3d").write_bytes(b"not a c3d file at all" * 10)
    with pytest.raises(DataError, match=r"bad.c3d: not a readable C3D file"):
        opensim.read_table(str(tmp_path / "bad.c3d"))


def test_npz_and_csv_readers_agree(tmp_path):
    z = opensim.read_table(str(V2 / "S1" / "trial_0" / "emg.npz"))
    writing.write_csv(str(tmp_path / "e.csv"), z.time, z.columns, z.values)
    tab = opensim.read_table(str(tmp_path / "e.csv"))
    assert z.columns == tab.columns
    np.testing.assert_allclose(z.values, tab.values, rtol=1e-5)
    mot = opensim.read_table(str(V2 / "S1" / "trial_0" / "kinematics.mot"))
    assert mot.in_degrees and mot.columns == ("wrist_flex",)
    np.testing.assert_allclose(opensim.to_radians(mot, ["wrist_flex"])[:, 0],
                               np.deg2rad(mot.values[:, 0]))
