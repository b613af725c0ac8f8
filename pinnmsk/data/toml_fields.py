"""TOML for data specs: reading a spec file, typed access to its tables with one-line errors
that name the spec and the field (:class:`_Fields`), and writing spec-shaped documents."""

from __future__ import annotations

import dataclasses
import os

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from pinnmsk.errors import DataError

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
    if isinstance(kind, tuple) and kind[0] == "per_joint":  # a number, or one per coordinate
        if isinstance(v, list):
            if len(v) != kind[1]:
                raise err(f"must be a number or a list of {kind[1]} numbers (one per "
                          f"coordinate), got {v!r}")
            return tuple(_check_type(x, float, err) for x in v)
        return _check_type(v, float, err)
    if isinstance(kind, tuple) and kind[0] == "map":
        if not isinstance(v, dict):
            raise err(f"must be a table, got {v!r}")
        return {k: _check_type(x, kind[1], err) for k, x in v.items()}
    if kind == "names":  # one name, or a list of names
        vals = (v,) if isinstance(v, str) else v
        if not isinstance(vals, (list, tuple)) or not vals or not all(
                isinstance(x, str) for x in vals):
            raise err(f"must be a name or a non-empty list of names, got {v!r}")
        return tuple(vals)
    if isinstance(kind, tuple) and kind[0] == "map_any":
        if not isinstance(v, dict):
            raise err(f"must be a table, got {v!r}")
        return v
    if isinstance(kind, tuple) and kind[0] == "choice":
        if v not in kind[1]:
            raise err(f"must be one of {', '.join(map(repr, kind[1]))}, got {v!r}")
        return v
    raise TypeError(kind)


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


def from_table(cls, fields: _Fields):
    """An instance of the dataclass ``cls`` from a TOML table: each field with a ``"kind"`` in
    its metadata (:func:`pinnmsk.data.spec_types.field`) is read as that kind, with the field's
    own default (required where it has none); unknown keys are an error."""
    values = {}
    for f in dataclasses.fields(cls):
        if "kind" not in f.metadata:
            continue
        default = (f.default if f.default is not dataclasses.MISSING else
                   f.default_factory() if f.default_factory is not dataclasses.MISSING
                   else _MISSING)
        values[f.name] = fields.get(f.name, f.metadata["kind"], default)
    fields.finish()
    return cls(**values)


def read_toml(path: str) -> dict:
    """The data spec at ``path`` as a TOML document; a one-line DataError if it is missing or
    not TOML."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: data spec not found; pass an existing file to --data_spec")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise DataError(f"{path}: not valid TOML ({e})") from None


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
