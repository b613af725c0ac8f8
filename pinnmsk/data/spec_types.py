"""The frozen dataclasses a data spec is read into (:func:`pinnmsk.data.spec.load_spec`); every
field is documented in ``data_specs/README.md``."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from pinnmsk.data import person_spec

def field(kind, default=dataclasses.MISSING, **kw):
    """A spec field read from its TOML table as ``kind`` (:func:`pinnmsk.data.toml_fields.
    from_table`); its default, written here once, is the TOML default."""
    return dataclasses.field(default=default, metadata={"kind": kind}, **kw)


def choice(*values):
    return ("choice", values)


@dataclasses.dataclass(frozen=True)
class EmgSpec:
    sampling_rate_hz: float = field(float)
    # file column -> muscle names it drives (a tuple: one muscle, or a group)
    channels: dict = field(("map", "names"))
    bandpass_hz: tuple = field(("pair",), (20.0, 450.0))
    bandpass_order: int = field(int, 4)
    lowpass_hz: float = field(float, 6.0)
    lowpass_order: int = field(int, 2)
    normalisation: str = field(choice("robust_max", "mvc"), "robust_max")
    mvc_v: dict = field(("map", float), default_factory=dict)
    rest_v: dict = field(("map", float), default_factory=dict)  # channel -> resting envelope [V]
    robust_quantile: float = field(float, 0.995)
    # "causal" (what streaming has) | "zero_phase" (offline option)
    envelope: str = field(choice("causal", "zero_phase"), "causal")
    # "raw" sEMG [V] | "envelope" (already processed: no filtering)
    input: str = field(choice("raw", "envelope"), "raw")
    # MVC value: peak of the envelope's moving mean over this window
    mvc_window_s: float = field(float, 0.5)
    rest_skip_s: float = field(float, 1.0)  # rest value: mean envelope after this much settling
    # see pinnmsk.emg.normalise
    rest_subtraction: str = field(choice("quadrature", "linear"), "quadrature")
    # samples beyond outlier_z robust SDs: "error" | "clip" | "drop"
    outliers: str = field(choice("error", "clip", "drop"), "error")
    outlier_z: float = field(float, 1000.0)
    # modelled muscles with no channel: "identify" (a bounded constant activation per subject,
    # identified: identification.unmeasured_activation) | "drop" (left out of the model)
    unmeasured: str = field(choice("identify", "drop"), "identify")


@dataclasses.dataclass(frozen=True)
class MvcRecording:
    """One MVC trial: the EMG file and the channels it is the maximal contraction of."""

    file: str
    channels: tuple


@dataclasses.dataclass(frozen=True)
class SubjectSpec:
    """Per-subject sources; None/empty fields fall back to the dataset-wide ones.

    osim: the subject's scaled OpenSim model (muscle parameters). length_table, motion,
    moment_arm_tables: its MuscleAnalysis output. mvc: MVC recordings; rest: a rest recording;
    mvc_v / rest_v: typed values per channel [V] instead of recordings.
    held_coordinates_rad: values [rad] of table coordinates the data do not record, overriding
    ``geometry.held_coordinates_rad`` one by one.
    """

    name: str
    osim: str | None = None
    length_table: str | None = None
    motion: str | None = None
    moment_arm_tables: dict = dataclasses.field(default_factory=dict)
    mvc: tuple = ()
    rest: str | None = None
    mvc_v: dict = dataclasses.field(default_factory=dict)
    rest_v: dict = dataclasses.field(default_factory=dict)
    held_coordinates_rad: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """rate_hz: the label rate [Hz]; file_rate_hz: rows per second of the kinematics files when
    they differ (e.g. a goniometer repeated to the EMG rate in a text export): the angles are
    averaged over each label period and sampled at the label rate."""

    rate_hz: float = field(float)
    coordinates: tuple = field(("list", str))
    # "file" (honour inDegrees), "degrees", "radians"
    coordinate_units: str = field(choice("file", "degrees", "radians"), "file")
    file_rate_hz: float | None = field(float, None)


@dataclasses.dataclass(frozen=True)
class TextSpec:
    """How plain-text exports (.txt/.tsv/.dat/.asc, no time column) are read.

    incomplete_rows: "error" (default) or "nan" (empty fields read as NaN; with
    windows.drop_nonfinite the windows touching them are dropped). columns: column names when
    the file names none (a DataLOG header names them itself)."""

    incomplete_rows: str = field(choice("error", "nan"), "error")
    columns: tuple = field(("list", str), ())


@dataclasses.dataclass(frozen=True)
class BodySpec:
    model: str  # a name in pinnmsk.bodies.BODIES ("pendulum", "two_link")
    params: dict  # constructor keyword arguments, SI units


@dataclasses.dataclass(frozen=True)
class MuscleSpec:
    """Nominal parameters; None where a subject's ``.osim`` gives them."""

    name: str
    f_max_n: float | None = None
    l_opt_m: float | None = None
    l_ts_m: float | None = None
    phi_opt_rad: float | None = None
    osim_name: str | None = None  # its name in the subjects' .osim, when that differs


@dataclasses.dataclass(frozen=True)
class ActivationSpec:
    """First-order activation dynamics in the Hill term (De Groote 2016; OpenSim's defaults)."""

    tau_act_s: float = field(float, 0.015)
    tau_deact_s: float = field(float, 0.060)


@dataclasses.dataclass(frozen=True)
class GeometrySpec:
    source: str  # "muscle_analysis" | "polynomial"
    degree: int
    length_table: str | None = None
    motion: str | None = None  # the motion a time-indexed MuscleAnalysis table was run on
    moment_arm_tables: dict = dataclasses.field(default_factory=dict)  # coordinate -> table
    centre_rad: tuple = ()
    scale_rad: tuple = ()
    coefficients_m: dict = dataclasses.field(default_factory=dict)
    # coordinates of the MuscleAnalysis table that the data do not record, held at a value [rad]
    # (e.g. the hip for the two-joint knee muscles); per subject in [[subjects]] too
    held_coordinates_rad: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """One trial's files. coordinate_sign / coordinate_offset_rad (one per coordinate): the
    angle used is sign · (file angle, in radians) + offset, for goniometers mounted the other
    way round or zeroed elsewhere. rename_columns: this trial's file column names → the names
    the spec uses (an export that labels its channels differently)."""

    subject: str
    name: str
    emg: str
    kinematics: str
    forces: str | None = None
    coordinate_sign: tuple = ()
    coordinate_offset_rad: tuple = ()
    rename_columns: dict = dataclasses.field(default_factory=dict)  # file column -> spec name

    @property
    def id(self) -> str:
        return f"{self.subject}/{self.name}"


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    by: str = field(choice("trial", "subject"), "trial")
    test: tuple = field(("list", str), ())
    validation: tuple = field(("list", str), ())
    # with no validation trials: the end of each train trial
    validation_fraction: float = field(float, 0.2)
    # with no test trials: the last part of every trial is test
    test_fraction: float = field(float, 0.0)


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    length_s: float = field(float, 0.2)
    history_s: float = field(float, 0.05)
    stride: int = field(int, 1)
    drop_nonfinite: bool = field(bool, False)


@dataclasses.dataclass(frozen=True)
class DataSpec:
    path: str
    name: str
    root: str
    emg: EmgSpec
    labels: LabelSpec
    body: BodySpec
    muscles: tuple
    identification: dict
    geometry: GeometrySpec
    trials: tuple
    split: SplitSpec
    windows: WindowSpec
    subjects: tuple = ()  # SubjectSpec, one per subject that has per-subject sources
    activation: "ActivationSpec" = None
    text: TextSpec = TextSpec()
    osim: str | None = None  # dataset-wide OpenSim model (a generic one); a subject's own wins
    tendon: str = "rigid"  # the Hill term's tendon for this dataset's muscles: rigid | compliant
    notes: tuple = ()  # what loading should tell the user (e.g. muscles left out), one line each
    person: "person_spec.PersonSpec | None" = None  # [person]: identified before training

    def subject(self, name: str) -> SubjectSpec:
        """The subject's sources (an empty :class:`SubjectSpec` when the spec names none)."""
        return next((s for s in self.subjects if s.name == name), SubjectSpec(name))

    @property
    def muscle_names(self) -> tuple:
        return tuple(m.name for m in self.muscles)

    @property
    def channel_of(self) -> dict:
        """Muscle name → the EMG column that drives it (muscles without a channel are absent)."""
        return {m: c for c, group in self.emg.channels.items() for m in group}

    @property
    def measured(self) -> np.ndarray:
        """(M,) bool, muscle order: whether the muscle has an EMG channel."""
        return np.array([m in self.channel_of for m in self.muscle_names])

    def resolve(self, rel: str) -> str:
        return rel if os.path.isabs(rel) else os.path.normpath(os.path.join(self.root, rel))
