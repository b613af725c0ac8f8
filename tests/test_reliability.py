"""The reliability battery: realistic bad input never gives a quiet wrong answer.

Each case breaks one thing in a copy of a small lab dataset (subject S1 of the OpenSim wrist v2
sample) and checks that loading, or the binary, stops with one line naming the file and the fix,
the expected exit status, and that nothing good is overwritten."""

import fcntl
import json

import numpy as np
import pytest

from pinnmsk.data import loading, opensim, spec, writing
from pinnmsk.errors import DataError
from tests import forkserver
from tests.conftest import ROOT


def _rewrite(path, fn):
    tab = opensim.read_table(str(path))
    t, v = fn(tab.time.copy(), tab.values.copy())
    if str(path).endswith(".npz"):
        np.savez(str(path), time=t, **{c: v[:, i] for i, c in enumerate(tab.columns)})
    else:
        writing.write_opensim(str(path), "x", t, tab.columns, v, tab.in_degrees)


def _set(row, col, value):
    def fn(t, v):
        v[row, col] = value
        return t, v
    return fn


def _emg(lab, trial="trial_0"):
    return lab.parent / "d" / "S1" / trial / "emg.npz"


def _kin(lab, trial="trial_0"):
    return lab.parent / "d" / "S1" / trial / "kinematics.mot"


def _radians_as_degrees(lab):
    p = _kin(lab)
    tab = opensim.read_table(str(p))
    writing.write_opensim(str(p), "x", tab.time, tab.columns, np.deg2rad(tab.values),
                          in_degrees=True)


def _emg_half(lab):
    _rewrite(_emg(lab), lambda t, v: (t[: len(t) // 2], v[: len(t) // 2]))


def _negative_fmax(lab):
    p = lab.parent / "d" / "S1" / "S1_scaled.osim"
    text = p.read_text()
    i = text.index("<max_isometric_force>")
    j = text.index("</max_isometric_force>", i)
    p.write_text(text[:i] + "<max_isometric_force>-300" + text[j:])


def _bad_root(lab):
    lab.write_text(lab.read_text().replace('root = "d"', 'root = "no_such_folder"'))


def _bad_csv_row(lab):
    p = _emg(lab)
    tab = opensim.read_table(str(p))
    csv = p.with_suffix(".csv")
    writing.write_csv(str(csv), tab.time[:500], tab.columns, tab.values[:500])
    lines = csv.read_text().splitlines()
    lines[10] = lines[10].replace(",", ",x", 1)  # data row 10, column 2 (after time)
    csv.write_text("\n".join(lines) + "\n")
    lab.write_text(lab.read_text().replace('emg = "S1/trial_0/emg.npz"',
                                           'emg = "S1/trial_0/emg.csv"'))


def _small_motion_degrees_labelled_radians(lab):
    """±7.8° of motion in degrees, the header saying radians (read as ±449°)."""
    p = _kin(lab)
    tab = opensim.read_table(str(p))
    v = tab.values - tab.values.mean()
    writing.write_opensim(str(p), "x", tab.time, tab.columns, v * 7.8 / np.abs(v).max(),
                          in_degrees=False)


def _scale_emg(trial, factor, col=None):
    def breaker(lab):
        def fn(t, v):
            if col is None:
                v = v * factor
            else:
                v[:, col] = v[:, col] * factor
            return t, v
        _rewrite(_emg(lab, trial), fn)
    return breaker


def _copy_file(name, src, dst):
    def breaker(lab):
        import shutil
        d = lab.parent / "d" / "S1"
        shutil.copy(d / src / name, d / dst / name)
    return breaker


def _swap_channels(lab):
    """FCR's electrode has 10x the others' gain in every trial; trial_0 swaps FCR and ECU."""
    for k in (0, 1, 3):
        _scale_emg(f"trial_{k}", 10.0, col=0)(lab)
    _rewrite(_emg(lab), lambda t, v: (t, v[:, [4, 1, 2, 3, 0]]))


def _mvc_other_gain(lab):
    p = lab.parent / "d" / "S1" / "mvc_flexion.npz"
    if not p.exists():
        p = p.with_suffix(".csv")
    _rewrite(p, lambda t, v: (t, v * 0.05))


def _rest_is_an_mvc(lab):
    import shutil
    d = lab.parent / "d" / "S1"
    shutil.copy(d / "mvc_flexion.npz", d / "rest.npz")


CASES = {
    # one corrupt sample would become the channel's normaliser and silence it everywhere
    "emg_outlier_1e30": (lambda lab: _rewrite(_emg(lab), _set(4000, 1, 1e30)),
                         ["emg.npz", "column 'FCU'", "outlier", "data row 4001",
                          "emg.outliers"]),
    "emg_beyond_float32": (lambda lab: _rewrite(_emg(lab), _set(10, 0, 1e40)),
                           ["emg.npz", "outlier", "float32"]),
    "angle_beyond_float32": (lambda lab: _rewrite(_kin(lab), _set(10, 0, 1e40)),
                             ["kinematics.mot", "wrist_flex", "float32"]),
    "radians_labelled_degrees": (_radians_as_degrees,
                                 ["kinematics.mot", "wrist_flex", "looks like radians",
                                  "coordinate_units"]),
    "emg_shorter_than_labels": (_emg_half, ["kinematics.mot", "would be dropped", "emg.npz"]),
    "negative_f_max": (_negative_fmax, ["S1_scaled.osim", "f_max_n = -300",
                                        "positive number"]),
    "bad_root": (_bad_root, ["field 'root'", "no_such_folder", "not a folder"]),
    "unparseable_csv_row": (_bad_csv_row, ["emg.csv", "data row 10 column 2", "not a number"]),
    # issue 31: ±7.8° in degrees read as radians (the old check fired only beyond 4π)
    "small_motion_degrees_labelled_radians": (_small_motion_degrees_labelled_radians,
                                              ["kinematics.mot", "wrist_flex", "looks like degrees",
                                               "coordinate_units"]),
    # one trial in millivolts would set the robust-max normaliser and silence the others
    "one_trial_in_millivolts": (_scale_emg("trial_1", 1000.0),
                                ["trial_1", "emg.npz", "EMG column", "e+03x", "millivolts"]),
    "copied_kinematics": (_copy_file("kinematics.mot", "trial_1", "trial_0"),
                          ["trial_1", "kinematics.mot", "identical to trial 'S1/trial_0'",
                           "copied file"]),
    "dead_channel": (_scale_emg("trial_0", 0.0, col=2),
                     ["trial_0", "emg.npz", "column 'ECRL'", "flat", "dead"]),
    "swapped_channels": (_swap_channels, ["trial_0", "'FCR' and 'ECU'", "swapped",
                                          "rename_columns"]),
    "mvc_with_other_gain": (_mvc_other_gain, ["mvc_flexion", "'S1'", "exceeds its MVC",
                                              "other gains"]),
    "goniometer_disconnected": (lambda lab: _rewrite(_kin(lab), lambda t, v: (t, 0 * v + 12.0)),
                                ["trial_0", "kinematics.mot", "'wrist_flex'", "constant",
                                 "goniometer"]),
    "rest_not_relaxed": (_rest_is_an_mvc, ["rest.npz", "'S1'", "not relaxed", "rest_v"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_data_stops_with_one_clear_line(lab, case):
    breaker, words = CASES[case]
    breaker(lab)
    with pytest.raises(DataError) as err:
        loading.load_dataset(spec.load_spec(str(lab)))
    msg = str(err.value)
    assert "\n" not in msg and "usecols" not in msg
    for w in words:
        assert w in msg, (w, msg)


@pytest.mark.parametrize("mode", ["clip", "drop"])
def test_outliers_can_be_clipped_or_dropped_on_request(lab, mode):
    clean = next(t for t in loading.load_dataset(spec.load_spec(str(lab))).trials
                 if t.id == "S1/trial_0")
    _rewrite(_emg(lab), _set(4000, 1, 1e30))
    lab.write_text(lab.read_text().replace('envelope = "causal"',
                                           f'envelope = "causal"\noutliers = "{mode}"'))
    data = loading.load_dataset(spec.load_spec(str(lab)))
    tr = next(t for t in data.trials if t.id == "S1/trial_0")
    assert np.isfinite(tr.excitation).all()
    # away from the bad sample (t = 4 s) the channel reads as it did before the corruption
    # (a 1e30 normaliser would leave it at ~0 in every trial)
    far = np.abs(tr.time_s - 4.0) > 1.5
    np.testing.assert_allclose(tr.excitation[far, 1], clean.excitation[far, 1], atol=0.01)
    assert tr.excitation[far, 1].max() > 0.1
    # dropped: the label samples around the gap are invalid (their windows are left out)
    assert (data.dropped_samples > 0) == (mode == "drop")


def test_unused_emg_and_clipping_are_said(lab, capsys):
    """Labels shorter than the EMG (10 s of EMG unused) and a channel clipped at the
    amplifier's range load, but the load log says so (and metrics.json's load_notes)."""
    tab = opensim.read_table(str(_kin(lab)))
    keep = tab.time <= tab.time[0] + 20.0
    writing.write_opensim(str(_kin(lab)), "x", tab.time[keep], tab.columns, tab.values[keep],
                          tab.in_degrees)

    def clip(t, v):
        lim = 0.3 * np.abs(v[:, 3]).max()
        v[:, 3] = np.clip(v[:, 3], -lim, lim)
        return t, v
    _rewrite(_emg(lab, "trial_1"), clip)
    data = loading.load_dataset(spec.load_spec(str(lab)), progress=True)
    err = capsys.readouterr().err
    unused = [n for n in data.load_notes if "trial_0" in n and "EMG lie outside" in n]
    assert len(unused) == 1 and "10.0" in unused[0] and "not used" in unused[0], data.load_notes
    clipped = [n for n in data.load_notes if "trial_1" in n and "clipped" in n]
    assert len(clipped) == 1 and "ECRB" in clipped[0], data.load_notes
    assert unused[0] in err and clipped[0] in err
    assert not any("trial_3" in n for n in data.load_notes)  # a clean trial says nothing


def test_a_drifting_goniometer_is_said(lab):
    """trial_1's angle with a steady drift of 60 % of its range added (a goniometer that
    creeps): loaded as recorded, with a note; the clean trials say nothing."""
    def drift(t, v):
        span = v[:, 0].max() - v[:, 0].min()
        v[:, 0] += 0.6 * span * (t - t[0]) / (t[-1] - t[0])
        return t, v
    _rewrite(_kin(lab, "trial_1"), drift)
    notes = loading.load_dataset(spec.load_spec(str(lab))).load_notes
    assert len(notes) == 1 and "trial_1" in notes[0] and "drifting goniometer" in notes[0], notes


# --------------------------------------------------------------------------- the binaries


def _bin(name, *args):
    return forkserver.run(f"experiments.{name}", *args, cwd=ROOT)


def _one_line_error(r, code, *words):
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    for w in words:
        assert w in err[0], (w, err[0])


@pytest.fixture(scope="session")
def one_epoch_run(tmp_path_factory):
    """A run trained with --epochs=1 and one batch per epoch (--batch_size=4000): one optimiser
    step, the schedule's edge case."""
    import shutil

    from tests.conftest import V2, v2_spec_text

    base = tmp_path_factory.mktemp("rel")
    shutil.copytree(V2 / "S1", base / "d" / "S1")
    p = base / "spec.toml"
    p.write_text(v2_spec_text("d"))
    w = base / "run"
    r = _bin("train", f"--data_spec={p}", f"--workdir={w}", "--epochs=1", "--batch_size=4000",
             "--physics_weight=0", "--noplots")
    assert r.returncode == 0, r.stderr[-3000:]
    return p, w


def test_one_step_run_evaluates_and_predicts(one_epoch_run, tmp_path):
    p, w = one_epoch_run
    good = json.load(open(w / "metrics.json"))
    r = _bin("evaluate", f"--data_spec={p}", f"--workdir={w}", "--noplots")
    assert r.returncode == 0, r.stderr[-3000:]
    again = json.loads((w / "metrics.json").read_text())  # strict JSON: no bare NaN
    assert again["test"]["angle"]["wrist_flex"]["r2"] == pytest.approx(
        good["test"]["angle"]["wrist_flex"]["r2"], abs=1e-6)
    out = tmp_path / "pred.csv"
    emg = p.parent / "d" / "S1" / "trial_3" / "emg.npz"
    r = _bin("predict", f"--data_spec={p}", f"--workdir={w}", f"--emg={emg}", f"--out={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.exists()
    assert "loading" not in r.stderr  # the run's inference record: no training data read


def test_predict_needs_no_training_data(one_epoch_run, tmp_path):
    """A copy of the run and its spec with every data file gone: predict gives the same CSV."""
    import shutil

    p, w = one_epoch_run
    emg = tmp_path / "emg.npz"
    shutil.copy(p.parent / "d" / "S1" / "trial_3" / "emg.npz", emg)
    out_a, out_b = tmp_path / "a.csv", tmp_path / "b.csv"
    r = _bin("predict", f"--data_spec={p}", f"--workdir={w}", f"--emg={emg}", f"--out={out_a}")
    assert r.returncode == 0, r.stderr[-3000:]
    copy = tmp_path / "copy"
    (copy / "d").mkdir(parents=True)  # the spec's root stays, empty
    shutil.copy(p, copy / "spec.toml")
    shutil.copytree(w, copy / "run")
    r = _bin("predict", f"--data_spec={copy / 'spec.toml'}", f"--workdir={copy / 'run'}",
             f"--emg={emg}", f"--out={out_b}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert out_a.read_text() == out_b.read_text()
    # a different spec is refused, not silently used with the run's normalisers
    (copy / "spec.toml").write_text((copy / "spec.toml").read_text().replace(
        "lowpass_hz = 6.0", "lowpass_hz = 4.0"))
    r = _bin("predict", f"--data_spec={copy / 'spec.toml'}", f"--workdir={copy / 'run'}",
             f"--emg={emg}", f"--out={out_b}")
    _one_line_error(r, 2, "not the spec", "inference.json")


def test_bad_data_through_a_binary_writes_nothing(lab, tmp_path):
    _rewrite(_emg(lab), _set(4000, 1, 1e30))
    w = tmp_path / "run"
    r = _bin("train", f"--data_spec={lab}", f"--workdir={w}", "--epochs=1")
    _one_line_error(r, 2, "emg.npz", "outlier")
    assert not w.exists()  # no folder, no .lock, no config, no checkpoints
    w.mkdir()  # a folder that was there stays, without a .lock left in it
    (w / "notes.txt").write_text("mine")
    r = _bin("sweep", f"--data_spec={lab}", f"--workdir={w}", "--epochs=1")
    _one_line_error(r, 2, "emg.npz", "outlier")
    assert sorted(p.name for p in w.iterdir()) == ["notes.txt"]


def test_predict_checks_the_file_rate(one_epoch_run, tmp_path):
    p, w = one_epoch_run
    src = opensim.read_table(str(p.parent / "d" / "S1" / "trial_3" / "emg.npz"))
    fast = tmp_path / "emg_2khz.npz"
    np.savez(str(fast), time=src.time / 2.0, **{c: src.values[:, i]
                                               for i, c in enumerate(src.columns)})
    out = tmp_path / "pred.csv"
    r = _bin("predict", f"--data_spec={p}", f"--workdir={w}", f"--emg={fast}", f"--out={out}")
    _one_line_error(r, 2, "emg_2khz.npz", "2000 Hz", "sampling_rate_hz")
    assert not out.exists()


def test_workdir_that_is_a_file_or_in_use(one_epoch_run, tmp_path):
    p, w = one_epoch_run
    f = tmp_path / "afile"
    f.write_text("x")
    r = _bin("train", f"--data_spec={p}", f"--workdir={f}", "--epochs=1")
    _one_line_error(r, 4, "is a file")
    assert "loading" not in r.stderr  # refused before any data is read
    with open(w / ".lock", "a+") as held:  # another job holds the run
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 424242")
        held.flush()
        r = _bin("train", f"--data_spec={p}", f"--workdir={w}", "--epochs=2",
                 "--batch_size=4000", "--physics_weight=0")
    _one_line_error(r, 4, "in use by a running job", "pid 424242")
    assert "epoch 2/2" not in r.stderr


def test_resume_checks_the_spec_contents(one_epoch_run, tmp_path):
    import shutil

    p, w = one_epoch_run
    w2 = tmp_path / "run"
    shutil.copytree(w, w2)
    # same path, other contents (edited in place, restored after)
    original = p.read_text()
    try:
        p.write_text(original.replace("lowpass_hz = 6.0", "lowpass_hz = 4.0"))
        r = _bin("train", f"--data_spec={p}", f"--workdir={w2}", "--epochs=2",
                 "--batch_size=4000", "--physics_weight=0")
    finally:
        p.write_text(original)
    _one_line_error(r, 2, "config.json", "data_spec_sha256")
    assert "loading" not in r.stderr  # refused before any data is read


def test_half_written_config_is_named(one_epoch_run, tmp_path):
    import shutil

    p, w = one_epoch_run
    w2 = tmp_path / "run"
    shutil.copytree(w, w2)
    good = (w2 / "metrics.json").read_text()
    (w2 / "config.json").write_text('{"model": "cn')
    r = _bin("evaluate", f"--data_spec={p}", f"--workdir={w2}")
    _one_line_error(r, 2, "config.json", "half-written")
    assert (w2 / "metrics.json").read_text() == good
    r = _bin("train", f"--data_spec={p}", f"--workdir={w2}", "--epochs=2",
             "--batch_size=4000", "--physics_weight=0")
    _one_line_error(r, 2, "config.json", "half-written")
    assert "loading" not in r.stderr


def test_a_run_recorded_before_a_setting_existed_resumes(one_epoch_run, tmp_path):
    """A config.json without a setting added later (here residual_weight) is the run at that
    setting's default: the same settings pass the resume check; another value does not."""
    import shutil

    from pinnmsk import records, train

    _, w = one_epoch_run
    w2 = tmp_path / "run"
    shutil.copytree(w, w2)
    now = json.loads((w2 / "config.json").read_text())
    old = {k: v for k, v in now.items() if k != "residual_weight"}
    (w2 / "config.json").write_text(json.dumps(old))
    assert now["residual_weight"] == train.TrainConfig().residual_weight
    records.check_config(str(w2), now)  # resumes
    with pytest.raises(records.ConfigMismatch, match="different residual_weight"):
        records.check_config(str(w2), {**now, "residual_weight": 0.5})


def test_a_sweep_recorded_before_named_weights_resumes(tmp_path):
    """A sweep's config.json from before the weights were named and the physics weights one
    field (physics_weight = its first λ; positional float32 weights of the seven terms there
    were) is read as today's record: the same sweep passes the resume check, another does not."""
    import dataclasses

    import numpy as np

    from pinnmsk import records, terms, train

    cfg = train.TrainConfig(physics_weights=(0.0, 0.01))
    w = terms.weights_for(cfg, [0.0, 0.01])
    now = {**dataclasses.asdict(cfg), "weights": w}
    old = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "physics_weights"}
    old["physics_weight"] = 0.0
    old["weights"] = np.asarray(terms.stack(w)[:, :7], np.float32).tolist()  # no ceiling yet
    (tmp_path / "config.json").write_text(json.dumps(old))
    records.check_config(str(tmp_path), now)  # resumes
    other = dataclasses.replace(cfg, physics_weights=(0.0, 0.1))
    with pytest.raises(records.ConfigMismatch, match="different physics_weights"):
        records.check_config(str(tmp_path), {**dataclasses.asdict(other), "weights": w})
    assert records.is_sweep(old) and records.recorded_weights(old)["ceiling"] == [0.0, 0.0]


def test_evaluate_refuses_a_changed_spec_or_data(one_epoch_run, tmp_path):
    """evaluate, like a resume, must see the spec and data the run was trained on; it rewrites
    nothing otherwise."""
    import shutil

    p, w = one_epoch_run
    copy = tmp_path / "copy"
    shutil.copytree(p.parent / "d", copy / "d")
    shutil.copy(p, copy / "spec.toml")
    shutil.copytree(w, copy / "run")
    before = {f: (copy / "run" / f).read_text() for f in ("metrics.json", "inference.json")}
    spec_copy = copy / "spec.toml"
    record = json.loads((copy / "run" / "config.json").read_text())
    record["data_spec"] = str(spec_copy)  # the run's own spec, moved with it
    (copy / "run" / "config.json").write_text(json.dumps(record))
    spec_copy.write_text(spec_copy.read_text().replace("lowpass_hz = 6.0", "lowpass_hz = 3.0"))
    r = _bin("evaluate", f"--workdir={copy / 'run'}", "--noplots")
    _one_line_error(r, 2, "config.json", "data_spec_sha256", "evaluate")
    assert "loading" not in r.stderr
    spec_copy.write_text(p.read_text())  # the spec restored, one recording edited
    _rewrite(copy / "d" / "S1" / "trial_0" / "emg.npz", lambda t, v: (t, v * 1.01))
    r = _bin("evaluate", f"--workdir={copy / 'run'}", "--noplots")
    _one_line_error(r, 2, "config.json", "data_sha256", "other data")
    for f, text in before.items():
        assert (copy / "run" / f).read_text() == text


def test_a_truncated_checkpoint_is_one_line(one_epoch_run, tmp_path):
    import shutil

    p, w = one_epoch_run
    w2 = tmp_path / "run"
    shutil.copytree(w, w2)
    files = [f for f in (w2 / "checkpoints").rglob("*") if f.is_file()]
    big = max(files, key=lambda f: f.stat().st_size)
    big.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    r = _bin("evaluate", f"--data_spec={p}", f"--workdir={w2}", "--noplots")
    _one_line_error(r, 2, "checkpoints", "cannot be read", "damaged", "delete")
    emg = p.parent / "d" / "S1" / "trial_3" / "emg.npz"
    out = tmp_path / "pred.csv"
    r = _bin("predict", f"--data_spec={p}", f"--workdir={w2}", f"--emg={emg}", f"--out={out}")
    _one_line_error(r, 2, "checkpoints", "cannot be read", "damaged")
    assert not out.exists()


def test_predict_refuses_emg_in_other_units(one_epoch_run, tmp_path):
    """A file in millivolts for a run trained on volts stops (exit 2) instead of predicting
    R² -2; --emg_scale converts it; a flat channel is warned about."""
    p, w = one_epoch_run
    src = opensim.read_table(str(p.parent / "d" / "S1" / "trial_3" / "emg.npz"))
    mv = tmp_path / "emg_mv.npz"
    np.savez(str(mv), time=src.time, **{c: 1000 * src.values[:, i]
                                        for i, c in enumerate(src.columns)})
    out = tmp_path / "pred.csv"
    r = _bin("predict", f"--data_spec={p}", f"--workdir={w}", f"--emg={mv}", f"--out={out}")
    _one_line_error(r, 2, "emg_mv.npz", "other units", "millivolts", "--emg_scale")
    assert not out.exists()
    ref = tmp_path / "ref.csv"
    r = _bin("predict", f"--data_spec={p}", f"--workdir={w}",
             f"--emg={p.parent / 'd' / 'S1' / 'trial_3' / 'emg.npz'}", f"--out={ref}")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr[-2000:]
    r = _bin("predict", f"--data_spec={p}", f"--workdir={w}", f"--emg={mv}", f"--out={out}",
             "--emg_scale=0.001")
    assert r.returncode == 0, r.stderr[-2000:]
    a = np.loadtxt(ref, delimiter=",", skiprows=1)
    b = np.loadtxt(out, delimiter=",", skiprows=1)
    np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-3)
    dead = tmp_path / "emg_dead.npz"
    vals = src.values.copy()
    vals[:, 2] = 0.0
    np.savez(str(dead), time=src.time, **{c: vals[:, i] for i, c in enumerate(src.columns)})
    r = _bin("predict", f"--data_spec={p}", f"--workdir={w}", f"--emg={dead}", f"--out={out}")
    assert r.returncode == 0 and "warning" in r.stderr and "'ECRL'" in r.stderr, r.stderr[-2000:]


def test_checkpoint_manifest_names_an_altered_file(one_epoch_run, tmp_path):
    """A flipped byte (same size) is caught before orbax reads the arrays; an intact
    checkpoint, and one written before manifests, pass."""
    import shutil

    from pinnmsk import checkpoint

    _, w = one_epoch_run
    step = tmp_path / "1"
    shutil.copytree(w / "checkpoints" / "1", step)
    checkpoint._check_manifest(str(step))
    files = [f for f in step.rglob("*") if f.is_file() and f.name != "pinnmsk_files.json"]
    big = max(files, key=lambda f: f.stat().st_size)
    b = bytearray(big.read_bytes())
    b[len(b) // 2] ^= 0xFF
    big.write_bytes(bytes(b))
    with pytest.raises(checkpoint.ConfigMismatch, match="differs from what was written"):
        checkpoint._check_manifest(str(step))
    (step / "pinnmsk_files.json").unlink()
    checkpoint._check_manifest(str(step))
