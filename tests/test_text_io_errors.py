"""Faults in a user's data file: one message naming the file, the right line and the fix."""

from __future__ import annotations

import re

import pytest

from datamodules import read_examples, read_texts


def tsv_lines(n: int) -> list[str]:
    """A header and ``n - 1`` well-formed TSV rows, one per line (row ``i`` on line ``i + 1``)."""
    return ["text\tlabel"] + [f"review {i}\t{'pos' if i % 2 else 'neg'}" for i in range(1, n)]


def write(path, lines: list[str]):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- CSV/TSV quoting
@pytest.mark.parametrize("later_quote", [False, True], ids=["no-later-quote", "later-quoted-field"])
@pytest.mark.parametrize("reader", [read_examples, read_texts])
def test_stray_quote_names_the_line_it_opens(tmp_path, reader, later_quote):
    lines = tsv_lines(320)
    lines[21] = '"a review with a stray quote\tpos'  # line 22
    if later_quote:
        lines[300] = '"a quoted review"\tneg'  # line 301: the csv module would close the stray quote here
    path = write(tmp_path / "reviews.tsv", lines)
    message = (f"{path}, line 22: a double quote opened here is never closed (the csv reader read on to line "
               f"{301 if later_quote else 320} looking for it). Close the quote, or write each double quote "
               'inside a field as two (""), e.g. "he said ""wow""".')
    with pytest.raises(ValueError, match=re.escape(message)):
        reader(path)


def test_text_after_a_closing_quote_names_its_line(tmp_path):
    lines = tsv_lines(6)
    lines[3] = '"great" film\tpos'
    path = write(tmp_path / "reviews.tsv", lines)
    with pytest.raises(ValueError, match=r"reviews.tsv, line 4: malformed quoting: '\\t' expected after '\"'\. "
                                         r"Close the quote, or write each double quote inside a field as two"):
        read_examples(path)


def test_closed_multiline_field_keeps_line_numbers(tmp_path):
    lines = ["text,label", "fine,pos", '"two', 'lines, ""quoted""",neg', "ok,pos", "good,", "bad,neg"]
    path = write(tmp_path / "reviews.csv", lines)
    message = f"{path}: 1 row with an empty value: 'label' empty at line 6. Fill them in, remove them"
    with pytest.raises(ValueError, match=re.escape(message)):
        read_examples(path)
    lines[5] = "good,pos"
    write(path, lines)
    examples = read_examples(path)
    assert [(e.line, e.label) for e in examples] == [(2, "pos"), (3, "neg"), (5, "pos"), (6, "pos"), (7, "neg")]
    assert examples[1].text == 'two\nlines, "quoted"'
    lines[2:4] = ['"two', 'lines",']  # an empty label on a multi-line row: the line it starts on
    write(path, lines)
    with pytest.raises(ValueError, match=r"reviews.csv: 1 row with an empty value: 'label' empty at line 3\."):
        read_examples(path)


def test_form_feed_and_line_separator_do_not_split_rows(tmp_path):
    path = write(tmp_path / "reviews.csv", ["text,label", "page\fbreak,pos", "line\u2028separator,neg", "x,"])
    with pytest.raises(ValueError, match=r"reviews.csv: 1 row with an empty value: 'label' empty at line 4\."):
        read_examples(path)


@pytest.mark.parametrize("row, fields", [("good, not great,pos", "3 fields"), ("no label", "1 field")])
def test_row_with_a_wrong_number_of_fields(tmp_path, row, fields):
    path = write(tmp_path / "reviews.csv", ["text,label", "fine,pos", row])
    message = (f"{path}, line 3: {fields} where the header has 2. "
               "Put double quotes around a field that holds a comma, or fix the row.")
    with pytest.raises(ValueError, match=re.escape(message)):
        read_examples(path)


# ---------------------------------------------------------------- JSONL
@pytest.mark.parametrize("reader, example", [(read_examples, '{"text": "...", "label": "..."}'),
                                             (read_texts, '{"text": "..."}')])
def test_bad_json_line(tmp_path, reader, example):
    path = write(tmp_path / "reviews.jsonl", ['{"text": "a", "label": "x"}', '{"text": "b", "label": "y"}',
                                              '{"text": "c" "label": "z"}'])
    message = (f"{path}, line 3: not valid JSON (Expecting ',' delimiter at column 14). "
               f"Write one JSON object per line, e.g. {example}.")
    with pytest.raises(ValueError, match=re.escape(message)):
        reader(path)


@pytest.mark.parametrize("reader", [read_examples, read_texts])
def test_missing_text_key(tmp_path, reader):
    path = write(tmp_path / "reviews.jsonl", ['{"text": "a", "label": "x"}', '{"review": "b", "label": "y"}'])
    message = f"{path}, line 2: no key 'text' (its keys: review, label). Set --data.text_column to one of them."
    with pytest.raises(ValueError, match=re.escape(message)):
        reader(path)


def test_json_line_that_is_not_an_object(tmp_path):
    path = write(tmp_path / "reviews.jsonl", ['{"text": "a"}', '', '["b"]'])
    with pytest.raises(ValueError, match=r"reviews.jsonl, line 3: expected a JSON object, got list\. "
                                         r"Write one JSON object per line, e.g. \{\"text\": \"...\"\}"):
        read_texts(path)


# ---------------------------------------------------------------- NUL bytes
NUL_FILES = [
    ("reviews.csv", ["text,label", "a,pos", "b,neg", "c,pos", "d\x00,neg"]),
    ("reviews.jsonl", ['{"text": "a", "label": "pos"}'] * 4 + ['{"text": "\x00", "label": "neg"}']),
]


@pytest.mark.parametrize(
    "reader, name, lines",
    [(read_examples, *case) for case in NUL_FILES]
    + [(read_texts, *case) for case in NUL_FILES]
    + [(read_texts, "reviews.txt", ["a", "b", "", "c", "d\x00"])],
)
def test_nul_byte_names_the_line(tmp_path, reader, name, lines):
    path = write(tmp_path / name, lines)
    message = f"{path}, line 5: contains a NUL byte (binary data, or a UTF-16 file?). Pass a UTF-8 text file"
    with pytest.raises(ValueError, match=re.escape(message)):
        reader(path)


# ---------------------------------------------------------------- predict files: the training checks
def test_predict_file_empty_text_and_missing_column(tmp_path):
    path = write(tmp_path / "p.csv", ["text", "fine", '"  "'])
    message = f"{path}: 1 row with an empty value: 'text' empty at line 3. Fill them in, remove them"
    with pytest.raises(ValueError, match=re.escape(message)):
        read_texts(path)
    path = write(tmp_path / "p.tsv", ["review", "fine"])
    with pytest.raises(ValueError, match=re.escape(f"{path} has no column 'text' (its columns: review). "
                                                   "Set --data.text_column to one of them.")):
        read_texts(path)
    (tmp_path / "e.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"e.jsonl is empty\. Expected one JSON object per line with the key 'text'"):
        read_texts(tmp_path / "e.jsonl")


def test_predict_files_read_cleanly(tmp_path):
    assert read_texts(write(tmp_path / "p.txt", ["one", "", "two\r"])) == ["one", "two"]
    assert read_texts(write(tmp_path / "p.csv", ["text,id", '"multi', 'line",1', "b,2"])) == ["multi\nline", "b"]
    assert read_texts(write(tmp_path / "p.jsonl", ['{"text": "a"}', "", '{"text": 5}'])) == ["a", "5"]
    assert read_texts(write(tmp_path / "h.csv", ["text"])) == []
