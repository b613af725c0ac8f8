"""Real lab exports: the DataLOG text reader, goniometer sign/offset and rate, the
leave-last-segment-out split, duplicate recordings and the model sanity report, on the real
standing knee-flexion recordings shipped in data/uci_knee_standing (cut down to two subjects)."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT
from pinnmsk import diagnostics, msk, prepare, sanity
from pinnmsk.data import loading, opensim, spec
from pinnmsk.errors import DataError
from pinnmsk.config import TrainConfig

KNEE = ROOT / "data" / "uci_knee_standing"
KNEE_SPEC = ROOT / "data_specs" / "uci_knee_standing.toml"


def knee_spec_text(root, subjects=("S3", "S11"), extra_trials: str = "") -> str:
    """The shipped knee spec cut down to ``subjects``, rooted at ``root``."""
    text = KNEE_SPEC.read_text().replace('root = "../data/uci_knee_standing"', f'root = "{root}"')
    head, *blocks = text.split("\n[[trials]]")
    keep = [b for b in blocks if b.split('subject = "', 1)[1].split('"')[0] in subjects]
    return head + "".join("\n[[trials]]" + b for b in keep) + extra_trials


@pytest.fixture
def knee(tmp_path):
    """Subjects S3 (flexion negative, padded export) and S11 (Spanish channel names)."""
    d = tmp_path / "d"
    (d / "raw").mkdir(parents=True)
    for s in (3, 11):
        shutil.copy(KNEE / "raw" / f"{s}Npie.txt", d / "raw")
    shutil.copytree(KNEE / "model", d / "model")
    p = tmp_path / "knee.toml"
    p.write_text(knee_spec_text("d"))
    return p


def test_datalog_reader_names_units_and_padding():
    t = opensim.read_table(str(KNEE / "raw" / "3Npie.txt"), 1000.0)
    assert t.columns == ("RF", "BF", "VM", "ST", "FX")
    # The header declares 9539 EMG values; the 21 goniometer-only rows after them are padding.
    assert len(t.time) == 9539 and t.header["trimmed_rows"] == 21
    assert t.in_degrees
    np.testing.assert_allclose(t.time[:3], [0.0, 0.001, 0.002])
    # mV -> V: the first row reads -0.0008 mV ... and 10.2 deg.
    np.testing.assert_allclose(t.values[0], [-0.0008e-3, -0.0015e-3, 0.0015e-3, -0.003e-3, 10.2])
    # Channel names come from the header, whatever the language.
    t11 = opensim.read_table(str(KNEE / "raw" / "11Npie.txt"), 1000.0)
    assert t11.columns[0] == "Recto Femoral" and t11.columns[-1] == "Flexo-Extension"


def _export(path, rows):
    head = ["File Name: x.log"] + [f"Channel {i + 1}: '{c}', {len(rows)} values, engineering "
                                   f"units: {u}, no filters." for i, (c, u) in
                                   enumerate([("A", "mV"), ("B", "mV"), ("ANG", "deg")])] + [""]
    path.write_text("\r\n".join(head + ["\t".join(r) for r in rows]) + "\r\n\t\t\r\n")


def test_incomplete_row_is_an_error_or_nan(tmp_path):
    rows = [["0.1", "0.2", "1"], ["0.1", "", "2"], ["0.3", "0.4", "3"]]
    p = tmp_path / "x.txt"
    _export(p, rows)
    with pytest.raises(DataError, match=r"data row 2 \(line 7\) is incomplete: column 'B'"):
        opensim.read_table(str(p), 1000.0)
    t = opensim.read_table(str(p), 1000.0, incomplete_rows="nan")
    assert np.isnan(t.values[1, 1]) and t.values[2, 1] == pytest.approx(0.4e-3)
    with pytest.raises(DataError, match="gives its rate"):
        opensim.read_table(str(p))


def test_knee_spec_signs_offsets_and_label_rate(knee):
    data = loading.load_dataset(spec.load_spec(str(knee)))
    by_id = {t.id: t for t in data.trials}
    s3 = by_id["S3/standing_flexion"]
    np.testing.assert_allclose(np.diff(s3.time_s), 0.01, atol=1e-9)
    raw = opensim.read_table(str(KNEE / "raw" / "3Npie.txt"), 1000.0).column("FX")
    # Label k is the mean of the 10 goniometer rows around it, sign-flipped and offset.
    k = 300
    i = int(round(s3.time_s[k] * 1000))
    expect = np.deg2rad(-raw[i - 5:i + 5].mean()) + 0.1745
    assert s3.q_rad[k, 0] == pytest.approx(expect, abs=1e-5)
    # Flexion positive, standing near 0 (the file reads -110 deg at peak flexion).
    assert np.rad2deg(s3.q_rad.max()) > 110 and abs(np.rad2deg(s3.q_rad.min())) < 3
    assert "S11/standing_flexion" in by_id  # read through rename_columns
    assert data.models.muscles.f_max_n.shape == (2, 4)  # the generic .osim, via osim_name
    np.testing.assert_allclose(data.models.muscles.f_max_n[0], [2332.635, 1397.601, 2924.465,
                                                                629.306], rtol=1e-5)


def test_last_segment_is_test_and_parts_do_not_touch(knee):
    data = loading.load_dataset(spec.load_spec(str(knee)))
    parts = data.split()
    assert sorted(t.id for t in parts["test"]) == ["S11/standing_flexion@test",
                                                     "S3/standing_flexion@test"]
    w = data.window
    for full in data.trials:
        test = next(t for t in parts["test"] if t.id.startswith(full.id))
        train = next(t for t in parts["train"] if t.id == full.id)
        val = next(t for t in parts["validation"] if t.id.startswith(full.id))
        n = len(full.time_s)
        assert len(test.time_s) == n - int(round(0.75 * n))
        assert test.time_s[0] == full.time_s[int(round(0.75 * n))]
        # no window of one part reaches into the next
        assert train.time_s[-1] + w * 0.01 < val.time_s[0] + 1e-9
        assert val.time_s[-1] + w * 0.01 <= test.time_s[0] + 1e-9


def test_duplicate_recording_is_refused(knee, tmp_path):
    shutil.copy(tmp_path / "d" / "raw" / "3Npie.txt", tmp_path / "d" / "raw" / "3copy.txt")
    dup = ('\n[[trials]]\nsubject = "S99"\nname = "standing_flexion"\nemg = "raw/3copy.txt"\n'
           'kinematics = "raw/3copy.txt"\nrename_columns = { FX = "knee_angle_r" }\n')
    knee.write_text(knee_spec_text("d", extra_trials=dup))
    with pytest.raises(DataError, match=r"3copy.txt: its EMG is identical to trial "
                                        r"'S3/standing_flexion'"):
        loading.load_dataset(spec.load_spec(str(knee)))


@pytest.mark.parametrize("old,new,msg", [
    ("coordinate_sign = [-1.0]", "coordinate_sign = [-2.0]", "must hold 1 or -1"),
    ("file_rate_hz = 1000.0", "file_rate_hz = 250.5", "whole multiple"),
    ("test_fraction = 0.25", "test_fraction = 0.25\ntest = [\"S3/standing_flexion\"]",
     "both given"),
    ('{ FX = "knee_angle_r" }', '{ FY = "knee_angle_r" }', "rename_columns names column 'FY'"),
])
def test_knee_spec_errors(knee, old, new, msg):
    knee.write_text(knee.read_text().replace(old, new, 1))
    with pytest.raises(DataError, match=msg):
        loading.load_dataset(spec.load_spec(str(knee)))


def test_model_sanity_flags_implausible_muscles(knee):
    data = loading.load_dataset(spec.load_spec(str(knee)))
    t = next(t for t in data.trials if t.id == "S3/standing_flexion")
    qd, qdd = diagnostics.derivatives(t.time_s, t.q_rad.astype(float))
    model = data.model_of(t.subject)
    names = data.spec.muscle_names
    rigid = sanity.model_sanity(model, names, t.q_rad[::5], qd[::5], qdd[::5], "rigid")
    # A rigid rectus femoris is stretched to 1.86 l_opt at 120 deg of flexion: 13.5 kN.
    assert rigid.fibre_length_norm[0, 1] == pytest.approx(1.86, abs=0.02)
    assert rigid.passive_force_n[0] > 10_000
    assert any("'RF' peaks at" in w for w in rigid.warnings)
    assert any("'RF' makes up to" in w and "10x" in w for w in rigid.warnings)
    compliant = sanity.model_sanity(model, names, t.q_rad[::5], qd[::5], qdd[::5],
                                         "compliant")
    assert 1500 < compliant.passive_force_n[0] < model.muscles.f_max_n[0]
    assert not any("peaks at" in w or "of passive torque" in w for w in compliant.warnings)
    # ... but at deep flexion the extensors' passive torque (~-50 N m) beats what the two
    # modelled hamstrings can pull: the generic model lacks flexors (gastrocnemius,
    # semimembranosus, biceps femoris short head, ...).
    assert compliant.infeasible_fraction[0] > 0.1 and compliant.shortfall_nm[0] > 30
    assert any("no activation of the modelled muscles" in w for w in compliant.warnings)
    # Tendons 30 % too long leave biceps femoris (l_mt <= 0.408 m, l_ts 0.413 m) slack over
    # the whole motion; semitendinosus (l_mt 0.34-0.46 m, l_ts 0.32 m) still pulls.
    long = msk.scale_muscles(model, l_ts=1.3)
    slack = sanity.model_sanity(long, names, t.q_rad[::5], qd[::5], qdd[::5], "rigid")
    assert [w.split("'")[1] for w in slack.warnings if "slack over the whole" in w] == ["BF"]
    assert slack.slack_fraction[1] == 1.0 and slack.slack_fraction[3] == 0.0


def test_spec_chooses_the_tendon_unless_the_config_does(knee):
    s = spec.load_spec(str(knee))
    assert s.tendon == "compliant"
    assert prepare.tendon_of(TrainConfig(), s) == "compliant"
    assert prepare.tendon_of(TrainConfig(tendon="rigid"), s) == "rigid"
    v2 = spec.load_spec(str(ROOT / "data_specs" / "opensim_wrist_v2.toml"))
    assert prepare.tendon_of(TrainConfig(), v2) == "rigid"


def test_shipped_knee_spec_loads_every_subject():
    s = spec.load_spec(str(KNEE_SPEC))
    assert [t.subject for t in s.trials] == [f"S{i}" for i in (1, 3, 4, 5, 6, 7, 8, 9, 10, 11)]
    data = loading.load_dataset(s)
    for t in data.trials:  # flexion positive and standing near zero in every recording
        assert 75 < np.rad2deg(t.q_rad.max()) < 125 and -6 < np.rad2deg(t.q_rad.min()) < 1


def test_knee_hip_table_holds_the_hip(tmp_path):
    """make_knee_table.py's knee × hip table: at hip 0 it equals the knee-only export; a spec
    holding the hip flexed (geometry.held_coordinates_rad) shortens rectus femoris and lengthens
    the hamstrings over the knee range, and leaves the one-joint vasti as they are."""
    model_dir = ROOT / "data" / "uci_knee_standing" / "model"
    grid = opensim.read_table(str(model_dir / "knee_hip_muscle_analysis_Length_ankle0.sto"))
    knee_only = opensim.read_table(str(model_dir / "knee_muscle_analysis_Length_hip0_ankle0.sto"))
    at0 = np.abs(grid.column("hip_flexion_r")) < 1e-9
    np.testing.assert_allclose(grid.column("knee_angle_r")[at0], knee_only.time, atol=1e-8)
    names = knee_only.columns
    np.testing.assert_allclose(grid.select(names)[at0], knee_only.select(names), atol=1e-7)
    text = (KNEE_SPEC.parent / "uci_knee_standing_flexors.toml").read_text()
    text = text.replace('root = "../data/uci_knee_standing"', f'root = "{model_dir.parent}"')

    def lengths(hip_rad):
        held = text.replace(
            'length_table = "model/knee_muscle_analysis_Length_hip0_ankle0.sto"',
            'length_table = "model/knee_hip_muscle_analysis_Length_ankle0.sto"\n'
            f"held_coordinates_rad = {{ hip_flexion_r = {hip_rad} }}")
        path = tmp_path / f"held_hip_{hip_rad}.toml"
        path.write_text(held)
        s = spec.load_spec(str(path))
        model = loading.build_model(s, "S1")
        q = jnp.linspace(0.0, 2.0, 9)[:, None]
        return s.muscle_names, np.asarray(jax.vmap(model.geometry.length)(q))

    names, flat = lengths(0.0)
    _, flexed = lengths(0.5)
    one_d = loading.build_model(spec.load_spec(str(KNEE_SPEC.parent /
                                                   "uci_knee_standing_flexors.toml")), "S1")
    np.testing.assert_allclose(flat, jax.vmap(one_d.geometry.length)(
        jnp.linspace(0.0, 2.0, 9)[:, None]), atol=5e-4)
    col = {n: i for i, n in enumerate(names)}
    assert np.all(flexed[:, col["recfem_r"]] < flat[:, col["recfem_r"]] - 0.01)
    for m in ("bflh_r", "semiten_r", "semimem_r"):
        assert np.all(flexed[:, col[m]] > flat[:, col[m]] + 0.01)
    np.testing.assert_allclose(flexed[:, col["vaslat_r"]], flat[:, col["vaslat_r"]], atol=5e-4)


def test_knee_flexors_spec_groups_channels_and_its_table_matches_the_lab_table():
    """The twelve-muscle knee spec: its OpenSim export (hip and ankle at 0) equals the lab's
    four-muscle table where they overlap, and the electrodes drive muscle groups with the
    gastrocnemii, gracilis and sartorius identified."""
    s = spec.load_spec(str(KNEE_SPEC.parent / "uci_knee_standing_flexors.toml"))
    model_dir = ROOT / "data" / "uci_knee_standing" / "model"
    new = opensim.read_table(str(model_dir / "knee_muscle_analysis_Length_hip0_ankle0.sto"))
    old = opensim.read_table(str(model_dir / "knee_muscle_analysis_Length_hip0.sto"))
    for col, osim_name in (("RF", "recfem_r"), ("BF", "bflh_r"), ("VM", "vasmed_r"),
                           ("ST", "semiten_r")):
        np.testing.assert_allclose(new.select([osim_name]), old.select([col]), atol=1e-7)
    names = np.array(s.muscle_names)
    assert list(names[s.measured]) == ["recfem_r", "bflh_r", "bfsh_r", "vasmed_r",
                                                "vaslat_r", "vasint_r", "semiten_r",
                                                "semimem_r"]
    assert list(names[~s.measured]) == ["gaslat_r", "gasmed_r", "grac_r", "sart_r"]
    model = loading.build_model(s, "S1")
    assert model.n_muscles == 12
