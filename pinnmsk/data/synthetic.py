"""Synthetic lab-shaped datasets: subjects with parameter variation, tracking motions with
co-contraction, raw sEMG synthesised from the excitations, written like the OpenSim sample.

The physics runs in JAX (:mod:`pinnmsk.simulator`, vmapped over a subject's trials), the sEMG
synthesis on the host (:func:`simulate_dataset`); :mod:`pinnmsk.data.writing` writes the files.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from pinnmsk import msk, simulator
from pinnmsk.data import writing
from pinnmsk.data.spec import DataSpec
from pinnmsk.msk import MskModel

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """What to generate.

    Attributes:
      n_subjects, n_trials: dataset size (trials per subject).
      duration_s: length of each trial [s].
      emg_rate_hz: raw sEMG sampling rate, also the simulation rate [Hz].
      label_rate_hz: kinematics/force sampling rate [Hz] (divides ``emg_rate_hz``).
      q_range_rad: (low, high) joint range the targets of a 1-DOF body stay within [rad]. A
        multi-coordinate body's targets stay within 80 % of each coordinate's range in its
        geometry (the range of the length table the polynomial was fitted to).
      variation: relative spread of subject parameters (F_max ±v, l_opt ±v/3, l_ts ±v/8,
        body mass and joint stiffness ±v/2), uniform.
      crosstalk: fraction of the other channels' signal in each channel.
      hum_v, noise_v: 50 Hz mains hum amplitude and sensor noise RMS [V].
      gain_v: (low, high) sEMG RMS at full excitation [V], random per channel and subject.
      joint_stiffness_nm: nominal passive flexion-extension stiffness of a 1-DOF joint [N m/rad]
        (varied ±variation/2 per subject, written into the spec's body). Wrist rotations are
        dominated by stiffness, not inertia (Charles & Hogan 2011; passive wrist stiffness is of
        order 1 N m/rad, Formica et al. 2012); without it the hand posture is held by gravity and
        co-contraction alone and hardly shows in the EMG. ``None`` keeps the base body's value.
      emg_format: ``"csv"`` (like a lab export) or ``"npz"`` (float32, 4x smaller).
      seed: everything is a deterministic function of it.
    """

    n_subjects: int = 3
    n_trials: int = 3
    duration_s: float = 20.0
    emg_rate_hz: float = 1000.0
    label_rate_hz: float = 100.0
    q_range_rad: tuple = (-1.0, 1.0)
    variation: float = 0.15
    crosstalk: float = 0.1
    hum_v: float = 5e-6
    noise_v: float = 3e-6
    gain_v: tuple = (3e-4, 1e-3)
    joint_stiffness_nm: float | None = 1.5
    emg_format: str = "csv"
    seed: int = 0


def vary_subject(base: MskModel, rng: np.random.Generator, v: float):
    """A subject: ``base`` with muscle and body parameters scaled; returns (model, true scales)."""
    m = base.n_muscles
    scales = {"f_max": rng.uniform(1 - v, 1 + v, m), "l_opt": rng.uniform(1 - v / 3, 1 + v / 3, m),
              "l_ts": rng.uniform(1 - v / 8, 1 + v / 8, m)}
    model = msk.scale_muscles(base, *(jnp.asarray(scales[k], jnp.float32)
                                      for k in ("f_max", "l_opt", "l_ts")))
    body = model.body
    if hasattr(body, "mass_kg"):
        s = float(rng.uniform(1 - v / 2, 1 + v / 2))
        body = body.replace(mass_kg=body.mass_kg * s, inertia_kgm2=body.inertia_kgm2 * s)
        scales["body_mass"] = s
    if hasattr(body, "stiffness_nm"):
        s = float(rng.uniform(1 - v / 2, 1 + v / 2))
        body = body.replace(stiffness_nm=body.stiffness_nm * s)
        scales["joint_stiffness"] = s
    return model.replace(body=body), {k: np.atleast_1d(x).tolist() for k, x in scales.items()}


def _simulate_trials(model: MskModel, keys, t_s, q_lo, q_hi, dt_s):
    def one(key):
        k1, k2 = jax.random.split(key)
        target = simulator.random_target(k1, t_s, q_lo, q_hi)
        cc = simulator.random_cocontraction(k2, t_s, model.n_muscles)
        return simulator.simulate_tracking(model, target, cc, dt_s)

    return jax.vmap(one)(keys)


simulate_trials = jax.jit(_simulate_trials)


def synthesize_emg(rng: np.random.Generator, u: np.ndarray, fs_hz: float, gains_v: np.ndarray,
                   crosstalk: float, hum_v: float, noise_v: float) -> np.ndarray:
    """Raw sEMG (T, M) [V] from excitations ``u`` (T, M): a band-limited (20–450 Hz) Gaussian
    carrier per muscle, amplitude-modulated by the excitation, mixed by crosstalk, plus 50 Hz hum
    and white sensor noise."""
    t_len, m = u.shape
    high = min(450.0, 0.45 * fs_hz)
    sos = scipy.signal.butter(4, (20.0, high), btype="bandpass", fs=fs_hz, output="sos")
    carrier = scipy.signal.sosfilt(sos, rng.standard_normal((t_len + 2000, m)), axis=0)[2000:]
    carrier /= carrier.std(axis=0, keepdims=True)
    sources = carrier * u * gains_v[None]
    mix = (1 - crosstalk) * np.eye(m) + crosstalk * (np.ones((m, m)) - np.eye(m)) / max(m - 1, 1)
    t = np.arange(t_len) / fs_hz
    hum = hum_v * np.sin(2 * np.pi * 50.0 * t[:, None] + rng.uniform(0, 2 * np.pi, m))
    return sources @ mix.T + hum + noise_v * rng.standard_normal((t_len, m))


@dataclasses.dataclass
class SyntheticDataset:
    """A simulated dataset in memory, what :func:`pinnmsk.data.writing.write_dataset` writes.

    Attributes:
      t_s: (N,) EMG sample times [s]; labels are every ``decimation``-th sample.
      muscles, coordinates: column names (muscle and coordinate order).
      emg_format: ``"csv"`` or ``"npz"``.
      subjects: per subject ``{"name", "trials": [{"name", "raw_emg_v" (N, M), "q_rad" (N, n),
        "forces_n", "activations", "excitations" (N, M)}]}``.
      truth: the simulated truth (model.json's content).
      geometry_tables: MuscleAnalysis-shaped tables, ``(name, index (R,), columns, values
        (R, C), index_label)``: index_label None for a row-index time column.
      spec: the dataset's spec as a TOML document (dict).
    """

    t_s: np.ndarray
    decimation: int
    muscles: tuple
    coordinates: tuple
    emg_format: str
    subjects: list
    truth: dict
    geometry_tables: list
    spec: dict


def simulate_dataset(base_spec: DataSpec, base: MskModel, config: SyntheticConfig,
                     log=print) -> SyntheticDataset:
    """Simulate every subject and trial of ``config`` from the spec's model ``base``: subject
    variation, tracking motions, raw sEMG. No files (write with :func:`generate`)."""
    ratio = config.emg_rate_hz / config.label_rate_hz
    if abs(ratio - round(ratio)) > 1e-9 or ratio < 1:
        raise ValueError(f"label rate {config.label_rate_hz:g} Hz must divide the EMG rate "
                         f"{config.emg_rate_hz:g} Hz")
    decim = int(round(ratio))
    dt = 1.0 / config.emg_rate_hz
    n = int(round(config.duration_s * config.emg_rate_hz))
    t = jnp.arange(n) * dt
    q_lo, q_hi = target_range(base, config)
    rng = np.random.default_rng(config.seed)
    key = jax.random.PRNGKey(config.seed)
    names, coords = base_spec.muscle_names, base_spec.labels.coordinates
    body_params = dict(base_spec.body.params)
    if config.joint_stiffness_nm is not None and base.n_coords == 1:
        body_params["stiffness_nm"] = float(config.joint_stiffness_nm)
        stiffness = jnp.float32(config.joint_stiffness_nm)
        base = base.replace(body=base.body.replace(stiffness_nm=stiffness))
    truth, trials_doc, subjects = {}, [], []
    emg_name = f"emg.{config.emg_format}"
    for s in range(config.n_subjects):
        subject = f"s{s}"
        model, scales = vary_subject(base, rng, config.variation)
        key, sub = jax.random.split(key)
        traj = jax.device_get(simulate_trials(model, jax.random.split(sub, config.n_trials), t,
                                              q_lo, q_hi, dt))
        if not np.all(np.isfinite(traj.q)):
            raise FloatingPointError(f"simulation of subject {subject} diverged")
        gains = rng.uniform(*config.gain_v, size=len(names))
        truth[subject] = {"scales": scales, "emg_gain_v": gains.tolist()}
        trials = []
        for k in range(config.n_trials):
            raw = synthesize_emg(rng, np.asarray(traj.u[k]), config.emg_rate_hz, gains,
                                 config.crosstalk, config.hum_v, config.noise_v)
            trials.append({"name": f"trial_{k}", "raw_emg_v": raw, "q_rad": traj.q[k],
                           "forces_n": traj.forces[k], "activations": traj.a[k],
                           "excitations": traj.u[k]})
            rel = f"{subject}/trial_{k}"
            trials_doc.append({"subject": subject, "name": f"trial_{k}",
                               "emg": f"{rel}/{emg_name}", "kinematics": f"{rel}/kinematics.mot",
                               "forces": f"{rel}/muscle_forces.sto"})
        subjects.append({"name": subject, "trials": trials})
        rms = np.sqrt(np.mean(np.square(traj.q)))
        log(f"subject {subject}: {config.n_trials} trials x {config.duration_s:g} s simulated, "
            f"angle RMS {np.rad2deg(rms):.1f} deg, mean force {np.mean(traj.forces):.1f} N")
    return SyntheticDataset(
        np.asarray(t), decim, tuple(names), tuple(coords), config.emg_format, subjects,
        {"generated_by": "python -m experiments.simulate", "config": dataclasses.asdict(config),
         "subjects": truth},
        _geometry_tables(base, names, coords, q_lo, q_hi),
        _spec_doc(base_spec, base.muscles, body_params, trials_doc, config))


def generate(base_spec: DataSpec, base: MskModel, out_dir: str, config: SyntheticConfig,
             log=print) -> str:
    """Simulate (:func:`simulate_dataset`) and write (:func:`pinnmsk.data.writing.write_dataset`)
    a dataset under ``out_dir``; returns the path of its ``spec.toml``. A failed run leaves
    nothing half-written."""
    return writing.write_dataset(simulate_dataset(base_spec, base, config, log), out_dir)


def target_range(model: MskModel, config: SyntheticConfig) -> tuple[Array, Array]:
    """(low (n,), high (n,)) [rad] the simulated targets stay within (see ``q_range_rad``)."""
    if model.n_coords == 1:
        lo, hi = config.q_range_rad
        return jnp.full((1,), lo, jnp.float32), jnp.full((1,), hi, jnp.float32)
    g = model.geometry
    return g.centre_rad - 0.8 * g.scale_rad, g.centre_rad + 0.8 * g.scale_rad


def _geometry_tables(model: MskModel, names, coords, q_lo, q_hi) -> list:
    """MuscleAnalysis-shaped Length and MomentArm tables over a grid 0.2 rad beyond the targets'
    range: 1-DOF, indexed by the coordinate (121 rows); several coordinates, a full grid (21 per
    coordinate) with the coordinates as columns after a row-index time column, as OpenSim's
    Analyze tool writes for a grid motion. Entries as :attr:`SyntheticDataset.geometry_tables`."""
    axes = [np.linspace(lo - 0.2, hi + 0.2, 121 if model.n_coords == 1 else 21)
            for lo, hi in zip(np.asarray(q_lo, float), np.asarray(q_hi, float))]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, model.n_coords)
    qg = jnp.asarray(grid, jnp.float32)
    lengths = np.asarray(jax.vmap(model.geometry.length)(qg))
    arms = np.asarray(jax.vmap(model.geometry.moment_arms)(qg))  # (N, M, n)
    tables = []
    for name, values in [("Length", lengths)] + [(f"MomentArm_{c}", arms[:, :, j])
                                                 for j, c in enumerate(coords)]:
        if model.n_coords == 1:
            tables.append((name, grid[:, 0], list(names), values, coords[0]))
        else:
            tables.append((name, 0.01 * np.arange(len(grid)), list(coords) + list(names),
                           np.column_stack([grid, values]), None))
    return tables


def _spec_doc(base: DataSpec, muscles, body_params: dict, trials, config: SyntheticConfig
              ) -> dict:
    """The generated dataset's spec; nominal muscle parameters ``muscles`` (MuscleParams)."""
    e = base.emg
    high = min(e.bandpass_hz[1], 0.45 * config.emg_rate_hz)
    test = [f"{t['subject']}/{t['name']}" for t in trials if t["name"] == f"trial_{config.n_trials - 1}"]
    return {
        "name": f"synthetic_{base.name}",
        "root": ".",
        "emg": {"sampling_rate_hz": config.emg_rate_hz, "bandpass_hz": [e.bandpass_hz[0], high],
                "bandpass_order": e.bandpass_order, "lowpass_hz": e.lowpass_hz,
                "lowpass_order": e.lowpass_order, "normalisation": "robust_max",
                "channels": {m: m for m in base.muscle_names}},
        "labels": {"rate_hz": config.label_rate_hz, "coordinates": list(base.labels.coordinates),
                   "coordinate_units": "file"},
        "body": {"model": base.body.model, **body_params},
        "muscles": [{"name": name, "f_max_n": float(muscles.f_max_n[i]),
                     "l_opt_m": float(muscles.l_opt_m[i]), "l_ts_m": float(muscles.l_ts_m[i]),
                     "phi_opt_rad": float(muscles.phi_opt_rad[i])}
                    for i, name in enumerate(base.muscle_names)],
        "identification": {k: dict(v) if isinstance(v, dict) else list(v)
                           for k, v in base.identification.items()},
        "geometry": {"source": "muscle_analysis", "length_table": "muscle_analysis_Length.sto",
                     "degree": base.geometry.degree,
                     "moment_arm_tables": {c: f"muscle_analysis_MomentArm_{c}.sto"
                                           for c in base.labels.coordinates}},
        "trials": trials,
        "split": {"by": "trial", "test": test, "validation": []},
        "windows": {"length_s": base.windows.length_s, "history_s": base.windows.history_s,
                    "stride": base.windows.stride, "drop_nonfinite": False},
    }
