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
import re

import numpy as np

from pinnmsk.errors import DataError


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
      index_label: the first column's name (``time``, or a coordinate for a grid table).
    """

    path: str
    columns: tuple[str, ...]
    time: np.ndarray
    values: np.ndarray
    in_degrees: bool = False
    header: dict = dataclasses.field(default_factory=dict)
    index_label: str = "time"

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise DataError(
                f"{self.path}: no column '{name}' (columns: {', '.join(self.columns)}); "
                "fix the name in the data spec")
        return self.values[:, self.columns.index(name)]

    def select(self, names) -> np.ndarray:
        """(T, len(names)) columns in the given order."""
        return np.stack([self.column(n) for n in names], axis=1)


def _first_bad_row(rows, delimiter, n_cols: int) -> str:
    """Where and why a numeric table does not parse (data rows count from 1)."""
    for r, ln in enumerate(rows):
        fields = [x.strip() for x in ln.rstrip("\r\n").split(delimiter)]
        if len(fields) != n_cols:
            return f"data row {r + 1} has {len(fields)} values for {n_cols} columns"
        for c, x in enumerate(fields):
            try:
                float(x)
            except ValueError:
                return f"data row {r + 1} column {c + 1} = {x!r} is not a number"
    return "the numeric table does not parse"


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
    except ValueError:
        raise DataError(f"{path}: {_first_bad_row(lines[1:], delimiter, len(names))}; every row "
                        "needs one number per column") from None
    if data.shape[1] != len(names):
        raise DataError(f"{path}: {len(names)} column names but {data.shape[1]} values per row")
    return Table(path, tuple(names[1:]), data[:, 0], data[:, 1:], in_degrees, header, names[0])


def read_opensim(path: str) -> Table:
    """Read an OpenSim .mot/.sto file (header up to ``endheader``, then a TSV table)."""
    lines = _read_lines(path)
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
    return _parse_table(path, _read_lines(path), ",", {}, False)


def read_xml(path: str, field: str):
    """The root element of the XML file at ``path``; a DataError naming the file, and the spec
    ``field`` to fix where it is missing."""
    import xml.etree.ElementTree as ET

    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found; fix {field} in the data spec")
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DataError(f"{path}: not readable XML ({e}); re-export it") from None


def _read_lines(path: str) -> list:
    """The text file's lines; a DataError naming the file if it is not there."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found; fix the path in the data spec "
                        "(relative paths resolve against the spec's folder)")
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return f.readlines()


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


def read_c3d(path: str) -> Table:
    """Analog channels of a C3D file (``ezc3d``, scaled as the file's ANALOG parameters say),
    one column per ANALOG label, time from the analog rate and the first frame."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found; fix the path in the data spec")
    import ezc3d

    try:
        c = ezc3d.c3d(path)
    except Exception as e:  # ezc3d raises plain RuntimeError/IOError for bad files
        raise DataError(f"{path}: not a readable C3D file ({e})") from None
    labels = [str(x).strip() for x in c["parameters"]["ANALOG"]["LABELS"]["value"]]
    values = np.asarray(c["data"]["analogs"], float)  # (1, channels, samples)
    if not labels or values.size == 0:
        raise DataError(f"{path}: the C3D file has no analog channels")
    rate = float(c["header"]["analogs"]["frame_rate"])
    first = float(c["header"]["points"]["first_frame"]) / max(
        float(c["header"]["points"]["frame_rate"]), 1e-9)
    n = values.shape[-1]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise DataError(f"{path}: analog label '{dup[0]}' appears twice; rename one channel")
    return Table(path, tuple(labels), first + np.arange(n) / rate, values[0].T, False,
                 {"rate_hz": rate})


_TEXT_EXTS = (".txt", ".tsv", ".dat", ".asc")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DATALOG_CHANNEL = re.compile(
    r"^Channel\s+(\d+)\s*:\s*'([^']+)'\s*,\s*(\d+)\s+values\s*,\s*engineering units:\s*"
    r"([^,]+)(.*)$", re.IGNORECASE)
_DATALOG_RATES = re.compile(r"from\s+([\d.]+)\s+to\s+([\d.]+)\s+samples per second",
                            re.IGNORECASE)
# Engineering units of a text export → factor to SI (angles stay in degrees: ``in_degrees``).
_UNIT_SCALE = {"v": 1.0, "mv": 1e-3, "uv": 1e-6, "µv": 1e-6, "deg": 1.0, "degrees": 1.0,
               "rad": 1.0, "radians": 1.0}


def read_text(path: str, rate_hz: float, incomplete_rows: str = "error",
              columns: tuple = ()) -> Table:
    """Read a plain-text lab export: header lines, then whitespace-separated numeric columns and
    no time column (time = row / ``rate_hz``, the rate the data spec gives).

    Column names come from a Biometrics DataLOG header (``Channel 1: 'RF', 14520 values,
    engineering units: mV, ...``), else from ``columns``, else from the last header line. A
    DataLOG header also gives each channel's unit (mV → V; ``deg`` marks the table
    ``in_degrees``) and value count: rows past the shortest channel's count, scaled by the rate it
    was repeated to (``extrapolated from 50 to 1000 samples per second``), are the export's
    padding and are cut; ``header["trimmed_rows"]`` says how many. An empty field inside the
    data is an error naming the row and column, or NaN with ``incomplete_rows = "nan"``
    (``windows.drop_nonfinite`` then drops the windows that touch it).
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found; fix the path in the data spec "
                        "(relative paths resolve against the spec's folder)")
    if not (np.isfinite(rate_hz) and rate_hz > 0):
        raise DataError(f"{path}: a text export has no time column; the data spec must give its "
                        "sampling rate")
    with open(path, "r", encoding="latin-1") as f:
        lines = f.read().splitlines()
    first = next((i for i, ln in enumerate(lines)
                  if ln.split() and all(_NUMBER.match(x) for x in ln.split())), None)
    if first is None:
        raise DataError(f"{path}: no numeric rows found; is this a text export of the recording?")
    header_lines = lines[:first]
    names, scales, counts, in_deg = [], [], [], False
    for ln in header_lines:
        m = _DATALOG_CHANNEL.match(ln.strip())
        if m:
            unit = m.group(4).strip()
            if unit.lower() not in _UNIT_SCALE:
                raise DataError(f"{path}: channel '{m.group(2)}' has unit '{unit}', which pinnmsk "
                                f"does not read (known: {', '.join(sorted(_UNIT_SCALE))})")
            names.append(m.group(2).strip())
            scales.append(_UNIT_SCALE[unit.lower()])
            in_deg |= unit.lower().startswith("deg")
            rates = _DATALOG_RATES.search(m.group(5))
            factor = float(rates.group(2)) / float(rates.group(1)) if rates else 1.0
            counts.append(int(m.group(3)) * factor)
    if not names:
        names = list(columns) or (header_lines[-1].split() if header_lines else [])
        scales = [1.0] * len(names)
    rows = lines[first:]
    n_rows = len(rows)
    while n_rows and not rows[n_rows - 1].strip():
        n_rows -= 1
    trimmed = 0
    if counts:
        keep = int(min(counts))
        if keep < n_rows:
            trimmed, n_rows = n_rows - keep, keep
    delim = "\t" if "\t" in rows[0] else None
    values = np.full((n_rows, len(names)), np.nan)
    for r in range(n_rows):
        fields = rows[r].split(delim)
        if delim is not None:
            fields = [x.strip() for x in fields]
        if len(fields) > len(names) and not any(fields[len(names):]):
            fields = fields[:len(names)]
        if len(fields) != len(names) or not all(fields):
            if incomplete_rows != "nan" or len(fields) > len(names):
                missing = next((names[c] for c in range(len(names))
                                if c >= len(fields) or not fields[c]), None)
                what = f"column '{missing}' is empty" if missing else (
                    f"{len(fields)} values for {len(names)} columns")
                raise DataError(f"{path}: data row {r + 1} (line {first + r + 1}) is incomplete: "
                                f"{what}; repair the export, or set text.incomplete_rows = "
                                "\"nan\" with windows.drop_nonfinite = true to drop it")
        for c, x in enumerate(fields[:len(names)]):
            if x:
                try:
                    values[r, c] = float(x)
                except ValueError:
                    raise DataError(f"{path}: data row {r + 1} (line {first + r + 1}) column "
                                    f"'{names[c]}' = {x!r} is not a number") from None
    if not names or n_rows < 2:
        raise DataError(f"{path}: {n_rows} data rows and {len(names)} named columns; name the "
                        "columns in the file's last header line or in text.columns")
    values *= np.asarray(scales)[None]
    header = {"rate_hz": rate_hz, "trimmed_rows": trimmed}
    return Table(path, tuple(names), np.arange(n_rows) / rate_hz, values, in_deg, header)


def read_table(path: str, rate_hz: float | None = None, incomplete_rows: str = "error",
               columns: tuple = ()) -> Table:
    """Dispatch on the extension: .mot/.sto (OpenSim), .csv, .npz, .c3d (analog channels), or a
    plain-text export without a time column (.txt/.tsv/.dat/.asc, :func:`read_text`, which needs
    ``rate_hz``)."""
    ext = os.path.splitext(path)[1].lower()
    if ext in _TEXT_EXTS:
        if rate_hz is None:
            raise DataError(f"{path}: a plain-text export has no time column; read it through a "
                            "data spec, which gives its rate")
        return read_text(path, rate_hz, incomplete_rows, columns)
    if ext in (".mot", ".sto"):
        return read_opensim(path)
    if ext == ".csv":
        return read_csv(path)
    if ext == ".npz":
        return read_npz(path)
    if ext == ".c3d":
        return read_c3d(path)
    raise DataError(f"{path}: unknown file type '{ext}'; use .csv, .npz, .mot, .sto, .c3d or a "
                    "text export (.txt, .tsv, .dat, .asc)")


def to_radians(table: Table, rotational) -> np.ndarray:
    """Values of the ``rotational`` columns (T, n) in radians, honouring ``inDegrees``."""
    v = table.select(rotational)
    return np.deg2rad(v) if table.in_degrees else v
