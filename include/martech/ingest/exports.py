"""Reading export files record by record, so that every physical line is accounted for.

CSV, JSON Lines and Parquet files are read into :class:`Record` values: one per record of the file, each
with the line it starts on, its bytes exactly as received and either its fields or a sentence saying what
is wrong with it and how to fix it. Nothing here raises on a bad value; a file that cannot be read at all
(a truncated Parquet file) raises :class:`FileRefused` with a sentence naming the file.

CSV records are cut at line ends outside quotes. A quote that never closes would otherwise swallow every
line after it; here a record that spans several lines and does not have the header's number of fields is
taken for an unterminated quote: its first line is reported and reading restarts on the next line.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

FIELD_LIMIT = 1 << 20  # bytes per field; larger values are reported, never loaded
MAX_RECORD_LINES = 1000  # a quoted value spanning more lines is taken for an unterminated quote
_NUL = "\ue000"  # stands in for a NUL byte while a CSV record is parsed
_SURROGATE = re.compile("[\udc80-\udcff]")

csv.field_size_limit(1 << 30)  # the per-field limit is FIELD_LIMIT, checked with a reason


class FileRefused(ValueError):
    """A file that cannot be read at all; the message names the file and what to do."""


@dataclass
class Record:
    line: int  # first physical line (CSV, JSON Lines) or record number (Parquet)
    raw: bytes  # the record as received
    fields: dict[str, Any] | None  # None when unreadable
    problem: str = ""  # what is wrong and how to fix it, when unreadable
    code: str = ""  # reason code for raw.quarantine

    def received(self) -> tuple[str, str]:
        """(text, encoding): the bytes as text when they are clean UTF-8, else base64."""
        return as_received(self.raw)


def as_received(raw: bytes) -> tuple[str, str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"
    if "\x00" in text:
        return base64.b64encode(raw).decode("ascii"), "base64"
    return text, "text"


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes including the line end) per physical line."""
    pos, n = 0, 1
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        yield n, data[pos:end]
        pos, n = end, n + 1


def _field_problem(name: str, value: Any) -> tuple[str, str]:
    """A sentence and code for a value that cannot be loaded as text, else ('', '')."""
    if not isinstance(value, str):
        return "", ""
    if _SURROGATE.search(value):
        byte = ord(_SURROGATE.search(value).group()) - 0xDC00  # type: ignore[union-attr]
        return (f"field {name} is not valid UTF-8 (byte 0x{byte:02X}; the file looks like Windows-1252 or"
                " Latin-1); re-export the file as UTF-8", "invalid_utf8")
    if "\x00" in value or _NUL in value:
        return f"field {name} holds a NUL byte; remove NUL characters from the export", "nul_byte"
    size = len(value.encode("utf-8", "surrogateescape"))
    if size > FIELD_LIMIT:
        return (f"field {name} is {size:,} bytes, over the limit of {FIELD_LIMIT:,} bytes per field; shorten it"
                " or leave it out of the export", "field_too_large")
    return "", ""


def _checked(line: int, raw: bytes, fields: dict[str, Any]) -> Record:
    for name, value in fields.items():
        problem, code = _field_problem(name, value)
        if problem:
            return Record(line, raw, None, problem, code)
    return Record(line, raw, fields)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape").replace("\x00", _NUL)


def _parse_csv(text: str) -> list[list[str]]:
    # strict: a quote must be followed by a delimiter or a line end, so two broken lines far apart
    # cannot pair up into one record that happens to have the right number of fields.
    return list(csv.reader(io.StringIO(text, newline=""), strict=True))


def read_csv(data: bytes) -> tuple[list[str], Iterator[Record]]:
    """The header and the records of a CSV file (a UTF-8 byte order mark is dropped)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = list(_lines(data))
    if not lines:
        return [], iter(())
    header_rows = _parse_csv(_decode(lines[0][1]))
    header = [h.strip() for h in header_rows[0]] if header_rows else []
    return header, _csv_records(header, lines[1:])


def _csv_records(header: list[str], lines: list[tuple[int, bytes]]) -> Iterator[Record]:
    i = 0
    while i < len(lines):
        start, first = lines[i]
        if not first.strip():
            i += 1
            continue
        quotes, j = first.count(b'"'), i
        while quotes % 2 and j + 1 < len(lines) and j - i < MAX_RECORD_LINES:
            j += 1
            quotes += lines[j][1].count(b'"')
        raw = b"".join(b for _, b in lines[i:j + 1])
        rows: list[list[str]] = []
        error = ""
        if quotes % 2 == 0:
            try:
                rows = _parse_csv(_decode(raw))
            except csv.Error as exc:
                error = f"not readable as CSV ({exc}); check the quoting of this line"
        if quotes % 2 or (j > i and (len(rows) != 1 or len(rows[0]) != len(header))):
            # An unterminated quote: report this line alone and read on from the next one.
            yield Record(start, first, None, "a quote opened on this line is never closed; close it or double the"
                         ' quote inside the value ("")', "unterminated_quote")
            i += 1
            continue
        i = j + 1
        if error or len(rows) != 1:
            yield Record(start, raw, None, error or "not readable as one CSV record", "malformed_csv_line")
            continue
        fields = rows[0]
        if len(fields) != len(header):
            yield Record(start, raw, None, f"expected {len(header)} fields, found {len(fields)}; quote values that"
                         " contain commas and remove trailing delimiters", "malformed_csv_line")
            continue
        yield _checked(start, raw, dict(zip(header, fields)))


def read_jsonl(data: bytes) -> Iterator[Record]:
    """One record per non-blank line of a JSON Lines file."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for n, raw in _lines(data):
        if not raw.strip():
            continue
        text = raw.decode("utf-8", "surrogateescape")
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Record(n, raw, None, f"not valid JSON ({exc.msg} at column {exc.colno}); each line must be one"
                         " complete JSON object", "invalid_json")
            continue
        if not isinstance(obj, dict):
            yield Record(n, raw, None, "each line must be one JSON object", "invalid_json")
            continue
        yield _checked(n, raw, {str(k): v for k, v in obj.items()})


def read_parquet(name: str, data: bytes) -> tuple[list[str], Iterator[Record]]:
    """The columns and the records of a Parquet file; FileRefused when it cannot be read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise FileRefused(f"{name}: not a readable Parquet file ({exc}); the file is truncated or not Parquet:"
                          " export it again and make sure the copy is complete") from None

    def records() -> Iterator[Record]:
        for n, obj in enumerate(table.to_pylist(), start=1):
            raw = json.dumps(obj, default=str, sort_keys=True).encode("utf-8", "surrogateescape")
            yield _checked(n, raw, obj)

    return table.column_names, records()


def physical_records(data: bytes, fmt: str) -> Iterator[tuple[int, bytes]]:
    """(line, bytes) per non-blank line (CSV and JSON Lines, the header included), or the whole file
    (Parquet): what a refused file is accounted for as."""
    if fmt == "parquet":
        yield 0, data
        return
    lines = [(n, raw) for n, raw in _lines(data) if raw.strip()]
    yield from lines[1:] if fmt == "csv" else lines
