# task: sequence_classification
"""Reading numeric series from files and from the UCR/UEA sets bundled in ``aeon``.

Every series comes out as a float32 array ``[time, channels]``; lengths may differ. Every error
names the file, the line or series, and the fix.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .splits import line_list, say

#: Classification sets that ``aeon`` 1.6.0 ships in ``aeon/datasets/data/`` (official train/test splits):
#: name -> train/test series, length, channels.
BUNDLED = {
    "ACSF1": "100/100 series of 1,460 steps, 1 channel, 10 classes",
    "ArrowHead": "36/175 series of 251 steps, 1 channel, 3 classes",
    "BasicMotions": "40/40 series of 100 steps, 6 channels, 4 classes",
    "Covid3Month_disc": "140/61 series of 84 steps, 1 channel, 3 classes",
    "GunPoint": "50/150 series of 150 steps, 1 channel, 2 classes",
    "ItalyPowerDemand": "67/1,029 series of 24 steps, 1 channel, 2 classes",
    "JapaneseVowels": "270/370 series of 7-29 steps, 12 channels, 9 classes",
    "OSULeaf": "200/242 series of 427 steps, 1 channel, 6 classes",
    "PickupGestureWiimoteZ": "50/50 series of 29-361 steps, 1 channel, 10 classes",
    "UnitTest": "20/22 series of 24 steps, 1 channel, 2 classes",
}
SUFFIXES = (".ts", ".npz", ".npy", ".csv", ".tsv")
LAYOUTS = ("auto", "ntc", "nct")
NAN_POLICIES = ("error", "zero", "interpolate")
CSV_FORMATS = ("auto", "wide", "long")
_MISSING = {"", "?", "nan", "na", "null"}  # cells read as a missing value (NaN)


@dataclass
class SeriesSet:
    """Series (float32 ``[time, channels]``), their labels (``None`` when unlabelled) and where each came from."""

    series: list[np.ndarray]
    labels: Optional[list[str]]
    where: list[str]  # e.g. "series 3 (line 12)", for error messages
    source: str  # the file, or "the bundled GunPoint set (TRAIN)"
    layout: Optional[str] = None  # how a .npz/.npy X was read (ntc or nct); None for other formats
    full_lengths: list[int] = field(default_factory=list)  # lengths before any max_length cut

    def __len__(self) -> int:
        return len(self.series)

    @property
    def channels(self) -> int:
        return int(self.series[0].shape[1]) if self.series else 0

    def subset(self, indices: Sequence[int]) -> SeriesSet:
        return SeriesSet(
            [self.series[i] for i in indices],
            None if self.labels is None else [self.labels[i] for i in indices],
            [self.where[i] for i in indices],
            self.source,
            self.layout,
            [self.full_lengths[i] for i in indices] if self.full_lengths else [],
        )


def aeon_data_dir() -> Path:
    """``aeon/datasets/data`` of the installed ``aeon``, found without importing it."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the bundled UCR/UEA sets need the `aeon` package: pip install aeon==1.6.0")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def bundled_name(name: str) -> str:
    """The bundled set's canonical name (matched case-insensitively).

    Raises:
        ValueError: not a bundled classification set, listing the valid ones.
    """
    for known in BUNDLED:
        if known.lower() == str(name).lower():
            return known
    raise ValueError(f"unknown bundled data set {name!r}; choose one of {', '.join(BUNDLED)}, "
                     "or set data.data_path to your own file.")


def read_bundled(name: str) -> tuple[SeriesSet, SeriesSet]:
    """The official ``(train, test)`` split of a set bundled in ``aeon``, read offline from its ``.ts`` files."""
    name = bundled_name(name)
    folder = aeon_data_dir() / name
    parts = []
    for split in ("TRAIN", "TEST"):
        part = read_ts(folder / f"{name}_{split}.ts", labelled=True)
        part.source = f"the bundled {name} set ({split})"
        parts.append(part)
    return parts[0], parts[1]


# ---------------------------------------------------------------------------------------------- dispatch
def read_series(
    path: str | Path,
    *,
    labelled: bool = True,
    option: str = "data_path",
    label_path: Optional[str] = None,
    layout: str = "auto",
    csv_format: str = "auto",
    label_column: str = "label",
    series_column: str = "series",
    time_column: str = "time",
    value_columns: Optional[Sequence[str]] = None,
    channels: int = 1,
) -> SeriesSet:
    """Read series from a ``.ts``, ``.npz``, ``.npy``, ``.csv`` or ``.tsv`` file.

    Args:
        path: the file; its suffix picks the format.
        labelled: whether labels are needed (training data); for prediction they are optional
            and ignored.
        option: the ``--data`` option that named the file, for messages.
        label_path: labels of a ``.npy`` file: a ``.npy`` array or a ``.txt`` with one label per line.
        layout: axes of a 3-D ``X``: ``ntc`` ([series, time, channels]), ``nct``, or ``auto``
            (channels are the smaller of the last two axes, said in one line).
        csv_format: ``wide`` (one row per series), ``long`` (one row per time step) or ``auto``
            (long when the header has ``series_column``).
        label_column: the CSV column holding the label.
        series_column: the long CSV column holding the series id.
        time_column: the long CSV column ordering the steps of a series (optional: file order without it).
        value_columns: the CSV columns holding the values (default: every other column).
        channels: wide CSV only: the values of a row are this many channel-major blocks.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unknown suffix (listing the valid ones), an empty file, ragged or
            non-numeric rows, missing labels or columns, series with different channel counts,
            each naming the file and line or series.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{option}: {path} does not exist. Pass an existing "
                                f"{', '.join(SUFFIXES)} file" + (", or leave data_path unset to use a bundled set."
                                                                 if option == "data_path" else "."))
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}.")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty. Expected {_EXPECTED[suffix]}.")
    if label_path is not None and suffix != ".npy":
        raise ValueError(f"label_path goes with a .npy data_path (X only); {path} is a {suffix} file, which holds its "
                         "own labels. Unset label_path.")
    if suffix == ".ts":
        result = read_ts(path, labelled)
    elif suffix in (".npz", ".npy"):
        result = read_arrays(path, labelled, layout, label_path, option)
    else:
        result = read_csv(path, labelled, csv_format, label_column, series_column, time_column, value_columns,
                          channels)
    if not result.series:
        raise ValueError(f"{path} is empty. Expected {_EXPECTED[suffix]}.")
    check_series(result)
    return result


_EXPECTED = {
    ".ts": "a UCR/UEA .ts file: @-headers, then @data and one series per line",
    ".npz": "arrays X ([N, T, C], [N, C, T] or [N, T]) and y ([N])",
    ".npy": "an array X ([N, T, C], [N, C, T] or [N, T]) and labels in label_path",
    ".csv": "a header line and one row per series (wide) or per time step (long)",
    ".tsv": "a header line and one row per series (wide) or per time step (long)",
}


def check_series(data: SeriesSet) -> None:
    """Every series non-empty with the channel count of the first.

    Raises:
        ValueError: an empty series or one with another channel count, naming it.
    """
    first = data.channels
    for array, where in zip(data.series, data.where):
        if array.shape[0] == 0:
            raise ValueError(f"{data.source}, {where}: the series has no values. Remove it or fill it in.")
        if array.shape[1] != first:
            raise ValueError(f"{data.source}, {where}: {_channels(array.shape[1])} where {data.where[0]} has "
                             f"{first}. Every series needs the same channels.")


def _channels(count: int) -> str:
    return f"{count} channel{'s' if count != 1 else ''}"


# ---------------------------------------------------------------------------------------------- .ts
def _ts_data_lines(path: Path) -> list[int]:
    """The line numbers of the series of a ``.ts`` file (the lines after ``@data``), as aeon reads them."""
    lines: list[int] = []
    seen_data = False
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if seen_data:
                lines.append(number)
            elif line.strip().lower().startswith("@data"):
                seen_data = True
    while lines and not _line_at(path, lines[-1]).strip():  # trailing blank lines hold no series
        lines.pop()
    return lines


def _line_at(path: Path, number: int) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for current, line in enumerate(handle, start=1):
            if current == number:
                return line
    return ""


def read_ts(path: Path, labelled: bool = True) -> SeriesSet:
    """Read a UCR/UEA ``.ts`` file with aeon's ``load_from_ts_file``; missing values (``?``) become NaN."""
    from aeon.datasets import load_from_ts_file  # ~2 s to import: only when a .ts file is read

    lines = _ts_data_lines(path)
    try:
        X, y, meta = load_from_ts_file(str(path), return_meta_data=True)
    except (OSError, ValueError, IndexError) as err:
        message = str(err)
        case = re.search(r"case (\d+)", message)
        where = f", line {lines[int(case.group(1)) - 1]}" if case and int(case.group(1)) <= len(lines) else ""
        if "could not convert" in message:
            bad = re.search(r"'([^']*)'", message)
            where = where or _ts_find_value(path, lines, bad.group(1) if bad else None)
            message = f"a value is not a number ({message})"
        elif not lines:
            message = "no @data line, or no series after it"
        raise ValueError(f"{path}{where}: not a readable .ts file: {message}. See "
                         "https://www.timeseriesclassification.com for the format.") from None
    series = [np.ascontiguousarray(np.asarray(x, dtype=np.float32).T) for x in X]  # [C, T] -> [T, C]
    labels = None
    if y is not None and len(y) == len(series) and meta.get("classlabel"):
        labels = [str(label).strip() for label in y]
    elif labelled:
        raise ValueError(f"{path}: the file holds no class labels (@classLabel false or missing). Give a labelled "
                         "file: '@classLabel true <labels>' and each series followed by ':<label>'.")
    where = [f"series {i} (line {lines[i]})" if i < len(lines) else f"series {i}" for i in range(len(series))]
    return SeriesSet(series, labels, where, str(path))


def _ts_find_value(path: Path, lines: list[int], bad: Optional[str]) -> str:
    if bad is None:
        return ""
    wanted = set(lines)
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if number in wanted and bad in line.lower():
                return f", line {number}"
    return ""


# ---------------------------------------------------------------------------------------------- .npz / .npy
def resolve_layout(shape: tuple[int, ...], layout: str, path: Path) -> str:
    """``ntc`` or ``nct`` for an ``X`` of ``shape``; ``auto`` takes the smaller of the last two axes as channels."""
    if layout != "auto" or len(shape) != 3:
        return "ntc" if layout == "auto" else layout
    _, a, b = shape
    if a == b:
        say(f"{path}: X of shape {tuple(shape)}: the last two axes are equal, read as [series, time, channels]; "
            "set data.layout nct if the channels come first.")
        return "ntc"
    guess = "nct" if a < b else "ntc"
    what = "[series, channels, time]" if guess == "nct" else "[series, time, channels]"
    other = "ntc" if guess == "nct" else "nct"
    say(f"{path}: X of shape {tuple(shape)} read as {what} (layout: auto, channels are the smaller axis: "
        f"{min(a, b)}); set data.layout {other} if not.", logging.INFO)
    return guess


_RAGGED = ("{path}: X holds Python objects (ragged series of different lengths?). Store them zero-padded in one "
           "numeric array X with their lengths in an array `lengths` (.npz), or use a .ts or long CSV file.")


def read_arrays(path: Path, labelled: bool, layout: str, label_path: Optional[str], option: str) -> SeriesSet:
    """Read ``X`` (and ``y``, optional ``lengths``) from a ``.npz``, or ``X`` from a ``.npy`` plus ``label_path``."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as err:
        if "Object arrays" in str(err):
            raise ValueError(_RAGGED.format(path=path)) from None
        raise ValueError(f"{path}: not a readable NumPy file ({err}).") from None
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable NumPy file ({err}).") from None
    lengths = None
    if path.suffix.lower() == ".npz":
        with loaded:
            keys = list(loaded.files)
            if "X" not in keys:
                raise ValueError(f"{path} has no array 'X' (its arrays: {', '.join(keys) or 'none'}). Save the series "
                                 "as X (and the labels as y): np.savez(path, X=X, y=y).")
            try:
                X = loaded["X"]
                y = loaded["y"] if "y" in keys else None
                lengths = loaded["lengths"] if "lengths" in keys else None
            except ValueError as err:  # arrays load lazily: an object array fails here
                raise ValueError(_RAGGED.format(path=path) if "Object arrays" in str(err)
                                 else f"{path}: not a readable NumPy file ({err}).") from None
        if y is None and labelled:
            raise ValueError(f"{path} has no array 'y' (its arrays: {', '.join(keys)}). Save the labels as y: "
                             "np.savez(path, X=X, y=y).")
    else:
        X, y = loaded, None
        if label_path is not None:
            y = read_label_file(Path(label_path))
        elif labelled and option != "data_path":
            raise ValueError(f"{path}: a .npy file holds no labels (label_path is for data_path only). Save the "
                             f"{option} series and labels together: np.savez(path, X=X, y=y).")
        elif labelled:
            raise ValueError(f"{path}: a .npy file holds no labels. Set --data.label_path to a .npy array or a .txt "
                             "file with one label per line, or save X and y together in a .npz.")
    if X.dtype.kind not in "fiub":
        raise ValueError(f"{path}: X has dtype {X.dtype}, not numbers. Store the series as a float array.")
    if X.ndim not in (2, 3):
        raise ValueError(f"{path}: X has shape {X.shape}; expected [N, T, C], [N, C, T] or [N, T].")
    if len(X) == 0:
        raise ValueError(f"{path} is empty: X has shape {X.shape}, no series.")
    resolved = resolve_layout(X.shape, layout, path)
    X = X[:, :, None] if X.ndim == 2 else (np.swapaxes(X, 1, 2) if resolved == "nct" else X)
    X = np.asarray(X, dtype=np.float32)
    if y is not None:
        y = np.asarray(y).reshape(-1) if np.asarray(y).ndim else np.asarray(y).reshape(1)
        if len(y) != len(X):
            where = f"{label_path}" if label_path is not None else f"{path}: y"
            raise ValueError(f"{where} has {len(y)} labels for {len(X)} series in {path}. One label per series.")
    series = [np.ascontiguousarray(x) for x in X]
    if lengths is not None:
        lengths = np.asarray(lengths).reshape(-1)
        if len(lengths) != len(X) or lengths.dtype.kind not in "iu":
            raise ValueError(f"{path}: lengths must hold one integer per series ({len(X)}), got shape "
                             f"{lengths.shape} of {lengths.dtype}.")
        bad = [i for i, n in enumerate(lengths.tolist()) if not 1 <= n <= X.shape[1]]
        if bad:
            raise ValueError(f"{path}: lengths of series {', '.join(map(str, bad[:10]))} are outside 1..{X.shape[1]} "
                             "(the padded length of X).")
        series = [x[: int(n)] for x, n in zip(series, lengths.tolist())]
    labels = None if y is None else [_label_text(v) for v in y.tolist()]
    if labels is not None:
        empty = [i for i, label in enumerate(labels) if not label]
        if empty:
            raise ValueError(f"{label_path or path}: empty labels for series {', '.join(map(str, empty[:10]))}.")
    return SeriesSet(series, labels, [f"series {i}" for i in range(len(series))], str(path), resolved)


def _label_text(value: object) -> str:
    """A label as text: ``1.0`` -> ``"1"`` (float arrays of class numbers), bytes decoded."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def read_label_file(path: Path) -> np.ndarray:
    """Labels from a ``.npy`` array or a ``.txt`` file with one label per line."""
    if not path.is_file():
        raise FileNotFoundError(f"label_path: {path} does not exist. Pass a .npy array or a .txt file with one label "
                                "per line.")
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"label_path: {path} is not a readable numeric or string .npy array ({err}).") from None
    if path.suffix.lower() != ".txt":
        raise ValueError(f"label_path: {path}: unsupported file type {path.suffix!r}; use .npy or .txt.")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"label_path: {path} is empty. Expected one label per line.")
    blank = [number for number, line in enumerate(lines, start=1) if not line.strip()]
    if blank:
        raise ValueError(f"label_path: {path}, {line_list(blank)}: empty label. One label per line, one line per "
                         "series.")
    return np.asarray([line.strip() for line in lines])


# ---------------------------------------------------------------------------------------------- CSV / TSV
def _number(cell: str, path: Path, line: int, column: str) -> float:
    text = cell.strip()
    if text.lower() in _MISSING:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}, line {line}, column {column}: {cell!r} is not a number. Fix the cell, or leave it "
                         "empty or '?' for a missing value.") from None


def _is_number(cell: str) -> bool:
    text = cell.strip()
    if text.lower() in _MISSING:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """``(line, cells)`` of every non-blank row of a CSV (comma) or TSV (tab) file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: the file is not valid UTF-8 ({err.reason} at byte {err.start}). Re-save it as "
                         "UTF-8.") from None
    reader = csv.reader(text.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    rows = []
    for cells in reader:
        if any(cell.strip() for cell in cells):
            rows.append((reader.line_num, cells))
    return rows


def read_csv(path: Path, labelled: bool, csv_format: str, label_column: str, series_column: str, time_column: str,
             value_columns: Optional[Sequence[str]], channels: int) -> SeriesSet:
    """Read a wide (one row per series) or long (one row per step) CSV/TSV file; see ``read_series``."""
    rows = _csv_rows(path)
    if not rows:
        raise ValueError(f"{path} is empty. Expected {_EXPECTED[path.suffix.lower()]}.")
    header = [cell.strip() for cell in rows[0][1]]
    long = csv_format == "long" or (csv_format == "auto" and series_column in header)
    if long:
        if series_column not in header:
            raise ValueError(f"{path} has no column {series_column!r} (its columns: {', '.join(header)}), needed by "
                             "csv_format: long. Set --data.series_column to the column of series ids.")
        return _read_long(path, rows, header, labelled, label_column, series_column, time_column, value_columns)
    return _read_wide(path, rows, labelled, label_column, value_columns, channels)


def _columns(path: Path, header: list[str], wanted: Optional[Sequence[str]], others: list[str]) -> list[int]:
    if wanted is None:
        return [i for i, name in enumerate(header) if name not in others]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise ValueError(f"{path} has no column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                         f"(its columns: {', '.join(header)}). Fix data.value_columns.")
    return [header.index(name) for name in wanted]


def _read_wide(path: Path, rows: list[tuple[int, list[str]]], labelled: bool, label_column: str,
               value_columns: Optional[Sequence[str]], channels: int) -> SeriesSet:
    first = [cell.strip() for cell in rows[0][1]]
    headerless = label_column not in first and all(_is_number(cell) for cell in first)
    if headerless:
        label_index = 0 if labelled else None
        header = [str(i) for i in range(max(len(cells) for _, cells in rows))]
        data = rows
        say(f"{path}: no header line: " + ("the first column is read as the label, the rest as values."
                                           if labelled else "every column is read as values."), logging.INFO)
        value_index = [i for i in range(len(header)) if i != label_index]
    else:
        header, data = first, rows[1:]
        if label_column not in header and labelled:
            raise ValueError(f"{path} has no column {label_column!r} (its columns: {', '.join(header)}). Set "
                             "--data.label_column to one of them.")
        label_index = header.index(label_column) if label_column in header else None
        value_index = _columns(path, header, value_columns, [label_column])
        if not data:
            raise ValueError(f"{path} has a header but no rows.")
    if not value_index:
        raise ValueError(f"{path}: no value columns (its columns: {', '.join(header)}).")
    series, labels, where = [], [], []
    for line, cells in data:
        if not headerless and len(cells) > len(header):
            raise ValueError(f"{path}, line {line}: {len(cells)} fields where the header has {len(header)} (a ragged "
                             "row). Give every row at most one field per header column; shorter series end in "
                             "empty cells.")
        cells = cells + [""] * (len(header) - len(cells))
        values = [cells[i] for i in value_index]
        while values and not values[-1].strip():  # trailing empty cells end a shorter series
            values.pop()
        if not values:
            raise ValueError(f"{path}, line {line}: the row has no values.")
        if len(values) % channels:
            raise ValueError(f"{path}, line {line}: {len(values)} values do not split into {channels} channels of "
                             "equal length (data.channels: the values are channel-major blocks).")
        numbers = [_number(cell, path, line, header[i]) for cell, i in zip(values, value_index)]
        series.append(np.asarray(numbers, dtype=np.float32).reshape(channels, -1).T.copy())
        if label_index is not None:
            label = cells[label_index].strip()
            if not label and labelled:
                raise ValueError(f"{path}, line {line}: empty label in column {header[label_index]!r}. Fill it in or "
                                 "remove the row.")
            labels.append(label)
        where.append(f"line {line}")
    return SeriesSet(series, labels if labelled else None, where, str(path))


def _read_long(path: Path, rows: list[tuple[int, list[str]]], header: list[str], labelled: bool, label_column: str,
               series_column: str, time_column: str, value_columns: Optional[Sequence[str]]) -> SeriesSet:
    if labelled and label_column not in header:
        raise ValueError(f"{path} has no column {label_column!r} (its columns: {', '.join(header)}). Set "
                         "--data.label_column to one of them.")
    series_index = header.index(series_column)
    time_index = header.index(time_column) if time_column in header else None
    label_index = header.index(label_column) if label_column in header else None
    value_index = _columns(path, header, value_columns, [series_column, time_column, label_column])
    if not value_index:
        raise ValueError(f"{path}: no value columns besides {series_column!r}, {time_column!r} and "
                         f"{label_column!r} (its columns: {', '.join(header)}).")
    if len(rows) < 2:
        raise ValueError(f"{path} has a header but no rows.")
    groups: dict[str, list[tuple[int, list[str]]]] = {}
    for line, cells in rows[1:]:
        if len(cells) != len(header):
            raise ValueError(f"{path}, line {line}: {len(cells)} fields where the header has {len(header)} (a ragged "
                             "row). Give every row one field per column; leave a missing value empty.")
        key = cells[series_index].strip()
        if not key:
            raise ValueError(f"{path}, line {line}: empty series id in column {series_column!r}.")
        groups.setdefault(key, []).append((line, cells))
    series, labels, where = [], [], []
    for key, members in groups.items():
        if time_index is not None:
            times = []
            for line, cells in members:
                time = _number(cells[time_index], path, line, time_column)
                if math.isnan(time):
                    raise ValueError(f"{path}, line {line}: empty time in column {time_column!r}.")
                times.append(time)
            seen: dict[float, int] = {}
            for (line, _), time in zip(members, times):
                if time in seen:
                    raise ValueError(f"{path}, lines {seen[time]} and {line}: series {key!r} has two rows at "
                                     f"{time_column} {time:g}. One row per time step.")
                seen[time] = line
            members = [member for _, member in sorted(zip(times, members), key=lambda pair: pair[0])]
        values = [[_number(cells[i], path, line, header[i]) for i in value_index] for line, cells in members]
        series.append(np.asarray(values, dtype=np.float32).reshape(len(members), len(value_index)))
        first_line = min(line for line, _ in members)
        where.append(f"series {key!r} (line {first_line})")
        if label_index is not None:
            found = {cells[label_index].strip() for _, cells in members}
            if len(found) > 1:
                lines = [line for line, _ in members]
                raise ValueError(f"{path}, series {key!r} ({line_list(sorted(lines))}): several labels "
                                 f"({', '.join(sorted(map(repr, found)))}). One label per series.")
            label = found.pop()
            if not label and labelled:
                raise ValueError(f"{path}, series {key!r} (line {first_line}): empty label in column "
                                 f"{label_column!r}.")
            labels.append(label)
    return SeriesSet(series, labels if labelled else None, where, str(path))


# ---------------------------------------------------------------------------------------------- missing values
def fill_missing(data: SeriesSet, policy: str = "error") -> SeriesSet:
    """Apply the ``nan`` policy to the NaN/Inf values of every series, in place.

    ``error`` names the first series with such values (and counts the others), ``zero`` puts 0 in
    their place (in the data's own units, before scaling), ``interpolate`` draws a straight line
    between the finite values on either side within the series and channel, and repeats the
    nearest finite value at its start and end.

    Raises:
        ValueError: non-finite values under ``error``; a channel of a series without a finite
            value to interpolate from.
    """
    bad = [i for i, array in enumerate(data.series) if not np.isfinite(array).all()]
    if not bad:
        return data
    if policy == "error":
        array = data.series[bad[0]]
        steps, chans = np.nonzero(~np.isfinite(array))
        shown = ", ".join(f"step {s} channel {c}" for s, c in list(zip(steps.tolist(), chans.tolist()))[:5])
        more = f" (and {len(bad) - 1} more series)" if len(bad) > 1 else ""
        raise ValueError(f"{data.source}, {data.where[bad[0]]}: {len(steps)} missing or infinite value"
                         f"{'s' if len(steps) > 1 else ''} (NaN/Inf) at {shown}{more}. Fix them, or set "
                         "--data.nan interpolate (linear within the series) or --data.nan zero.")
    if policy == "zero":
        for i in bad:
            data.series[i] = np.where(np.isfinite(data.series[i]), data.series[i], 0).astype(np.float32)
        say(f"{data.source}: missing or infinite values in {len(bad)} series set to 0 (data.nan: zero).", logging.INFO)
        return data
    for i in bad:
        array = data.series[i].copy()
        for channel in range(array.shape[1]):
            column = array[:, channel]
            finite = np.isfinite(column)
            if not finite.any():
                raise ValueError(f"{data.source}, {data.where[i]}: channel {channel} has no finite value to "
                                 "interpolate from. Fix the series, or set --data.nan zero.")
            if not finite.all():
                steps = np.arange(len(column))
                column[~finite] = np.interp(steps[~finite], steps[finite], column[finite])
        data.series[i] = array
    say(f"{data.source}: missing or infinite values in {len(bad)} series interpolated (data.nan: interpolate).",
        logging.INFO)
    return data
