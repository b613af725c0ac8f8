"""Readers and writers for OpenSim storage files (.mot, .sto) and plain CSV/NPZ tables.

An OpenSim file is a header of ``key=value`` lines closed by ``endheader``, then a tab-separated
table whose first column is time (or, for MuscleAnalysis tables over a coordinate grid, the
coordinate). ``inDegrees=yes`` means rotational columns are in degrees: callers convert to
radians at this boundary with :func:`to_radians`.
"""

from __future__ import annotations

import dataclasses
import io
import os

import numpy as np


class DataError(ValueError):
    """A user's data file or spec is wrong; the message names the file/field and the fix."""


@dataclasses.dataclass(frozen=True)
class Table:
    """A time-indexed table read from disk.

    Attributes:
      path: where it came from (for messages).
      columns: names of the data columns (time excluded).
      time: (T,) first column.
      values: (T, len(columns)) float64.
      in_degrees: whether the header said ``inDegrees=yes``.
      header: the header's key/value pairs.
    """

    path: str
    columns: tuple[str, ...]
    time: np.ndarray
    values: np.ndarray
    in_degrees: bool = False
    header: dict = dataclasses.field(default_factory=dict)

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise DataError(
                f"{self.path}: no column '{name}' (columns: {', '.join(self.columns)}); "
                "fix the name in the data spec")
        return self.values[:, self.columns.index(name)]

    def select(self, names) -> np.ndarray:
        """(T, len(names)) columns in the given order."""
        return np.stack([self.column(n) for n in names], axis=1)


def _parse_table(path: str, text_lines, delimiter, header: dict, in_degrees: bool) -> Table:
    lines = [ln for ln in text_lines if ln.strip()]
    if not lines:
        raise DataError(f"{path}: no table after the header")
    names = [c.strip() for c in lines[0].rstrip("\r\n").split(delimiter)]
    body = "".join(lines[1:])
    if not body.strip():
        raise DataError(f"{path}: the table has a header row but no data rows")
    try:
        data = np.loadtxt(io.StringIO(body), delimiter=delimiter, ndmin=2, dtype=np.float64)
    except ValueError as e:
        raise DataError(f"{path}: cannot parse the numeric table ({e}); check the delimiter and "
                        "that every row has one value per column") from None
    if data.shape[1] != len(names):
        raise DataError(f"{path}: {len(names)} column names but {data.shape[1]} values per row")
    return Table(path, tuple(names[1:]), data[:, 0], data[:, 1:], in_degrees, header)


def read_opensim(path: str) -> Table:
    """Read an OpenSim .mot/.sto file (header up to ``endheader``, then a TSV table)."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found; fix the path in the data spec "
                        "(relative paths resolve against the spec's folder)")
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    header, end = {}, None
    for i, ln in enumerate(lines):
        s = ln.strip()
        if s.lower() == "endheader":
            end = i
            break
        if "=" in s:
            k, v = s.split("=", 1)
            header[k.strip()] = v.strip()
    if end is None:
        raise DataError(f"{path}: no 'endheader' line; is this an OpenSim .mot/.sto file?")
    in_deg = header.get("inDegrees", "no").lower() == "yes"
    delim = "\t" if "\t" in lines[end + 1] else None
    return _parse_table(path, lines[end + 1:], delim, header, in_deg)


def read_csv(path: str) -> Table:
    """Read a CSV whose first row names the columns and whose first column is time [s]."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found; fix the path in the data spec "
                        "(relative paths resolve against the spec's folder)")
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    return _parse_table(path, lines, ",", {}, False)


def read_npz(path: str, time_key: str = "time") -> Table:
    """Read an NPZ with a ``time`` array (T,) and one (T,) array per column."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found; fix the path in the data spec")
    with np.load(path) as z:
        if time_key not in z:
            raise DataError(f"{path}: no '{time_key}' array (arrays: {', '.join(z.files)})")
        cols = [k for k in z.files if k != time_key]
        return Table(path, tuple(cols), np.asarray(z[time_key], float),
                     np.stack([np.asarray(z[k], float) for k in cols], axis=1))


def read_table(path: str) -> Table:
    """Dispatch on the extension: .mot/.sto (OpenSim), .csv, .npz."""
    ext = os.path.splitext(path)[1].lower()
    if ext in (".mot", ".sto"):
        return read_opensim(path)
    if ext == ".csv":
        return read_csv(path)
    if ext == ".npz":
        return read_npz(path)
    raise DataError(f"{path}: unknown file type '{ext}'; use .csv, .npz, .mot or .sto")


def to_radians(table: Table, rotational) -> np.ndarray:
    """Values of the ``rotational`` columns (T, n) in radians, honouring ``inDegrees``."""
    v = table.select(rotational)
    return np.deg2rad(v) if table.in_degrees else v


def write_opensim(path: str, name: str, time, columns, values, in_degrees: bool = False,
                  time_label: str = "time") -> None:
    """Write an OpenSim .mot/.sto (version 1 header, tab-separated)."""
    values = np.asarray(values, float)
    time = np.asarray(time, float)
    lines = [name, "version=1", f"nRows={len(time)}", f"nColumns={len(columns) + 1}",
             f"inDegrees={'yes' if in_degrees else 'no'}", "endheader",
             "\t".join([time_label, *columns])]
    body = np.column_stack([time, values])
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
        np.savetxt(f, body, delimiter="\t", fmt="%.8g")


def write_csv(path: str, time, columns, values) -> None:
    """Write a CSV with a ``time`` column and one column per name."""
    body = np.column_stack([np.asarray(time, float), np.asarray(values, float)])
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(["time", *columns]) + "\n")
        np.savetxt(f, body, delimiter=",", fmt="%.6g")
