"""Declarative dataset specs (TOML): parsing, type checking and path resolution.

Every field is documented in ``data_specs/README.md``. A spec is read into frozen dataclasses;
a wrong or missing field raises :class:`~pinnmsk.data.opensim.DataError` with one line naming the
spec file, the field and the fix. Relative file paths resolve against ``root``, which itself
resolves against the spec file's folder.
"""

from __future__ import annotations

import dataclasses
import os

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from pinnmsk.data.opensim import DataError

_MISSING = object()


class _Fields:
    """Typed access to one TOML table, with errors that name the spec and the field."""

    def __init__(self, spec_path: str, table: dict, prefix: str):
        self.path, self.table, self.prefix = spec_path, table, prefix
        self.used: set[str] = set()

    def _err(self, key: str, msg: str) -> DataError:
        return DataError(f"{self.path}: field '{self.prefix}{key}' {msg}")

    def get(self, key, kind, default=_MISSING):
        self.used.add(key)
        if key not in self.table:
            if default is _MISSING:
                raise self._err(key, "is missing; add it (see data_specs/README.md)")
            return default
        v = self.table[key]
        return _check_type(v, kind, lambda m: self._err(key, m))

    def sub(self, key, required=True) -> "_Fields":
        self.used.add(key)
        t = self.table.get(key, _MISSING)
        if t is _MISSING:
            if required:
                raise self._err(key, "is missing; add a [" + self.prefix + key + "] table")
            t = {}
        if not isinstance(t, dict):
            raise self._err(key, f"must be a table, got {type(t).__name__}")
        return _Fields(self.path, t, f"{self.prefix}{key}.")

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self._err(unknown[0], "is not a known field; check its spelling "
                                        "(see data_specs/README.md)")


def _check_type(v, kind, err):
    if kind is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise err(f"must be a number, got {v!r}")
        return float(v)
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise err(f"must be an integer, got {v!r}")
        return v
    if kind is bool:
        if not isinstance(v, bool):
            raise err(f"must be true or false, got {v!r}")
        return v
    if kind is str:
        if not isinstance(v, str):
            raise err(f"must be a string, got {v!r}")
        return v
    if isinstance(kind, tuple) and kind[0] == "list":
        if not isinstance(v, list):
            raise err(f"must be a list, got {v!r}")
        return tuple(_check_type(x, kind[1], err) for x in v)
    if isinstance(kind, tuple) and kind[0] == "pair":
        if not isinstance(v, list) or len(v) != 2:
            raise err(f"must be a list of two numbers, got {v!r}")
        return tuple(_check_type(x, float, err) for x in v)
    if isinstance(kind, tuple) and kind[0] == "map":
        if not isinstance(v, dict):
            raise err(f"must be a table, got {v!r}")
        return {k: _check_type(x, kind[1], err) for k, x in v.items()}
    if isinstance(kind, tuple) and kind[0] == "choice":
        if v not in kind[1]:
            raise err(f"must be one of {', '.join(map(repr, kind[1]))}, got {v!r}")
        return v
    raise TypeError(kind)


@dataclasses.dataclass(frozen=True)
class EmgSpec:
    sampling_rate_hz: float
    channels: dict  # file column -> muscle name
    bandpass_hz: tuple = (20.0, 450.0)
    bandpass_order: int = 4
    lowpass_hz: float = 6.0
    lowpass_order: int = 2
    normalisation: str = "robust_max"  # or "mvc"
    mvc_v: dict = dataclasses.field(default_factory=dict)
    rest_v: dict = dataclasses.field(default_factory=dict)  # channel -> resting envelope [V]
    robust_quantile: float = 0.995


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    rate_hz: float
    coordinates: tuple
    coordinate_units: str = "file"  # "file" (honour inDegrees), "degrees", "radians"


@dataclasses.dataclass(frozen=True)
class BodySpec:
    model: str  # "pendulum" | "two_link"
    params: dict  # constructor keyword arguments, SI units


@dataclasses.dataclass(frozen=True)
class MuscleSpec:
    name: str
    f_max_n: float
    l_opt_m: float
    l_ts_m: float
    phi_opt_rad: float


@dataclasses.dataclass(frozen=True)
class GeometrySpec:
    source: str  # "muscle_analysis" | "polynomial"
    degree: int
    length_table: str | None = None
    centre_rad: tuple = ()
    scale_rad: tuple = ()
    coefficients_m: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    subject: str
    name: str
    emg: str
    kinematics: str
    forces: str | None = None

    @property
    def id(self) -> str:
        return f"{self.subject}/{self.name}"


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    by: str = "trial"  # "trial" | "subject"
    test: tuple = ()
    validation: tuple = ()


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    length_s: float = 0.2
    history_s: float = 0.05
    stride: int = 1
    drop_nonfinite: bool = False


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

    @property
    def muscle_names(self) -> tuple:
        return tuple(m.name for m in self.muscles)

    @property
    def channel_of(self) -> dict:
        """Muscle name → EMG column (the inverse of ``emg.channels``)."""
        return {m: c for c, m in self.emg.channels.items()}

    def resolve(self, rel: str) -> str:
        return rel if os.path.isabs(rel) else os.path.normpath(os.path.join(self.root, rel))


_BODY_FIELDS = {
    "pendulum": ("mass_kg", "com_m", "inertia_kgm2", "gravity_mps2", "q_offset_rad",
                 "damping_nms", "stiffness_nm", "q_rest_rad"),
    "two_link": ("m1_kg", "m2_kg", "l1_m", "lc1_m", "lc2_m", "i1_kgm2", "i2_kgm2",
                 "gravity_mps2", "damping_nms"),
}
_ID_DEFAULTS = {"f_max": (0.5, 1.5), "l_opt": (0.8, 1.2), "l_ts": (0.95, 1.05),
                "emg_gain": (0.05, 1.0)}


def _table_list(top: _Fields, raw: dict, key: str, what: str, build) -> list:
    """Parse a non-empty array of tables ``[[key]]``, one ``build(fields)`` per entry."""
    if not isinstance(raw.get(key), list) or not raw[key]:
        raise DataError(f"{top.path}: field '{key}' is missing; add one [[{key}]] table per {what}")
    top.used.add(key)
    out = []
    for i, entry in enumerate(raw[key]):
        if not isinstance(entry, dict):
            raise DataError(f"{top.path}: field '{key}[{i}]' must be a table ([[{key}]])")
        f = _Fields(top.path, entry, f"{key}[{i}].")
        out.append(build(f))
        f.finish()
    return out


def load_spec(path: str) -> DataSpec:
    """Parse and type-check a TOML data spec. Raises ``DataError`` on any problem."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: data spec not found; pass an existing file to --data_spec")
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise DataError(f"{path}: not valid TOML ({e})") from None
    top = _Fields(path, raw, "")
    name = top.get("name", str)
    root = os.path.normpath(os.path.join(os.path.dirname(path), top.get("root", str, ".")))

    e = top.sub("emg")
    emg = EmgSpec(
        sampling_rate_hz=e.get("sampling_rate_hz", float),
        channels=e.get("channels", ("map", str)),
        bandpass_hz=e.get("bandpass_hz", ("pair",), (20.0, 450.0)),
        bandpass_order=e.get("bandpass_order", int, 4),
        lowpass_hz=e.get("lowpass_hz", float, 6.0),
        lowpass_order=e.get("lowpass_order", int, 2),
        normalisation=e.get("normalisation", ("choice", ("robust_max", "mvc")), "robust_max"),
        mvc_v=e.get("mvc_v", ("map", float), {}),
        rest_v=e.get("rest_v", ("map", float), {}),
        robust_quantile=e.get("robust_quantile", float, 0.995),
    )
    e.finish()
    if emg.normalisation == "mvc":
        missing = [c for c in emg.channels if c not in emg.mvc_v]
        if missing:
            raise DataError(f"{path}: field 'emg.mvc_v' has no value for channel '{missing[0]}'; "
                            "add it or set emg.normalisation = \"robust_max\"")
    for c, v in emg.rest_v.items():
        if c not in emg.channels:
            raise DataError(f"{path}: field 'emg.rest_v' names channel '{c}', which is not in "
                            f"emg.channels ({', '.join(emg.channels)}); fix the name")
        if v < 0 or (emg.normalisation == "mvc" and c in emg.mvc_v and v >= emg.mvc_v[c]):
            raise DataError(f"{path}: field 'emg.rest_v' = {v} for channel '{c}' must be >= 0 "
                            "and below its emg.mvc_v value")

    lab = top.sub("labels")
    labels = LabelSpec(lab.get("rate_hz", float), lab.get("coordinates", ("list", str)),
                       lab.get("coordinate_units", ("choice", ("file", "degrees", "radians")),
                               "file"))
    lab.finish()
    if not labels.coordinates:
        raise DataError(f"{path}: field 'labels.coordinates' is empty; name the joint coordinates")

    b = top.sub("body")
    model = b.get("model", ("choice", tuple(_BODY_FIELDS)))
    params = {k: b.get(k, float) for k in _BODY_FIELDS[model] if k in b.table}
    b.finish()
    n_dof = {"pendulum": 1, "two_link": 2}[model]
    if n_dof != len(labels.coordinates):
        raise DataError(f"{path}: field 'body.model' = '{model}' has {n_dof} coordinate(s) but "
                        f"labels.coordinates names {len(labels.coordinates)}; make them agree")

    muscles = _table_list(top, raw, "muscles", "muscle", lambda f: MuscleSpec(
        f.get("name", str), f.get("f_max_n", float), f.get("l_opt_m", float),
        f.get("l_ts_m", float), f.get("phi_opt_rad", float, 0.0)))
    names = [m.name for m in muscles]
    for col, mus in emg.channels.items():
        if mus not in names:
            raise DataError(f"{path}: field 'emg.channels.{col}' maps to unknown muscle '{mus}' "
                            f"(muscles: {', '.join(names)}); fix the name")
    unmapped = [m for m in names if m not in emg.channels.values()]
    if unmapped:
        raise DataError(f"{path}: field 'emg.channels' maps no channel to muscle "
                        f"'{unmapped[0]}'; every muscle needs one EMG channel")

    idf = top.sub("identification", required=False)
    ident = {k: idf.get(k, ("pair",), v) for k, v in _ID_DEFAULTS.items()}
    idf.finish()
    lo, hi = ident["emg_gain"]
    if not 0 < lo <= hi:
        raise DataError(f"{path}: field 'identification.emg_gain' = [{lo}, {hi}] must satisfy "
                        "0 < low <= high, e.g. [0.05, 1.0]")
    for k, (lo, hi) in ident.items():
        if k != "emg_gain" and not 0 < lo <= 1 <= hi:
            raise DataError(f"{path}: field 'identification.{k}' = [{lo}, {hi}] must bracket 1 "
                            "(fractions of the nominal value), e.g. [0.5, 1.5]")

    g = top.sub("geometry")
    src = g.get("source", ("choice", ("muscle_analysis", "polynomial")))
    geometry = GeometrySpec(
        src, g.get("degree", int, 5),
        length_table=g.get("length_table", str) if src == "muscle_analysis" else None,
        centre_rad=g.get("centre_rad", ("list", float), ()),
        scale_rad=g.get("scale_rad", ("list", float), ()),
        coefficients_m=g.get("coefficients_m", ("map", ("list", float)), {}),
    )
    g.finish()
    if src == "polynomial":
        for mname in names:
            if mname not in geometry.coefficients_m:
                raise DataError(f"{path}: field 'geometry.coefficients_m' has no entry for muscle "
                                f"'{mname}'; add its polynomial coefficients")

    trials = _table_list(top, raw, "trials", "trial", lambda f: TrialSpec(
        f.get("subject", str), f.get("name", str), f.get("emg", str), f.get("kinematics", str),
        f.get("forces", str, None)))
    ids = [t.id for t in trials]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"{path}: trial '{dup}' is listed twice under [[trials]]; rename one")

    s = top.sub("split", required=False)
    split = SplitSpec(s.get("by", ("choice", ("trial", "subject")), "trial"),
                      s.get("test", ("list", str), ()), s.get("validation", ("list", str), ()))
    s.finish()
    known = set(ids) if split.by == "trial" else {t.subject for t in trials}
    for field in ("test", "validation"):
        for item in getattr(split, field):
            if item not in known:
                raise DataError(f"{path}: field 'split.{field}' names unknown "
                                f"{'trial' if split.by == 'trial' else 'subject'} '{item}' "
                                f"(known: {', '.join(sorted(known))})")
    if not split.test:
        raise DataError(f"{path}: field 'split.test' is empty; name the test trials or subjects")

    w = top.sub("windows", required=False)
    windows = WindowSpec(w.get("length_s", float, 0.2), w.get("history_s", float, 0.05),
                         w.get("stride", int, 1), w.get("drop_nonfinite", bool, False))
    w.finish()
    if windows.stride < 1 or windows.length_s <= 0 or not 0 <= windows.history_s <= windows.length_s:
        raise DataError(f"{path}: fields 'windows.*' need stride >= 1, length_s > 0 and "
                        "0 <= history_s <= length_s")
    top.finish()
    return DataSpec(path, name, root, emg, labels, BodySpec(model, params), tuple(muscles),
                    ident, geometry, tuple(trials), split, windows)


# --------------------------------------------------------------------------- writing


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def dumps_toml(doc: dict, comment: str = "") -> str:
    """Serialise a spec-shaped dict (scalars, tables, arrays of tables) as TOML."""
    out = [f"# {line}" for line in comment.splitlines()]
    scalars = {k: v for k, v in doc.items() if not isinstance(v, dict)
               and not (isinstance(v, list) and v and isinstance(v[0], dict))}
    out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars.items()]
    for k, v in doc.items():
        if isinstance(v, dict):
            out += ["", f"[{k}]"] + [f"{_toml_key(a)} = {_toml_value(b)}" for a, b in v.items()]
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                out += ["", f"[[{k}]]"] + [f"{_toml_key(a)} = {_toml_value(b)}"
                                          for a, b in item.items()]
    return "\n".join(out) + "\n"
