"""Files of user records: JSON array, NDJSON and CSV, read and written a record at a time.

Each record is checked with the API's own schema (UserRecordIn); a record that
breaks it becomes a row with the reason, and reading goes on (as far as the
file can still be read: after malformed JSON in an array, it cannot).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import PurePath
from typing import IO, Any, Final

from pydantic import ValidationError

from app.schemas import UserRecordIn, error_location, error_message
from app.service.bulk import ExportedUser, ImportRow

FORMATS: Final = ("json", "ndjson", "csv")
EXTENSIONS: Final = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}
CSV_HEADER: Final = ("userid", "first_name", "last_name", "groups")
CSV_GROUP_SEPARATOR: Final = ";"
# How a row's place in the file is named in a report.
PLACE: Final = {"json": "element", "ndjson": "line", "csv": "line"}

# Characters of text read at once from a JSON array.
_CHUNK = 1 << 16
# A single element larger than this is refused rather than buffered on.
_MAX_ELEMENT = 16 << 20
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# An exported record: the contract's record, keys in its order, as json.dumps spaces it.
_JSON_RECORD = '{"first_name": %s, "last_name": %s, "userid": %s, "groups": [%s]}'


class FileFormatError(ValueError):
    """The format cannot be told, or is not one of FORMATS."""


def format_of(path: str | None, given: str | None) -> str:
    """The format asked for, else the one the file name's extension says."""
    if given is not None:
        if given not in FORMATS:
            raise FileFormatError(f"unknown format {given!r}: use one of {', '.join(FORMATS)}")
        return given
    suffix = PurePath(path).suffix.lower() if path and path != "-" else ""
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    where = f"the extension of {path!r}" if suffix else "a file name without an extension"
    raise FileFormatError(
        f"cannot tell the format from {where}: name the file .json, .ndjson or .csv, "
        "or pass --format json|ndjson|csv"
    )


# --- reading ---


def read_rows(stream: IO[bytes], fmt: str) -> Iterator[ImportRow]:
    """The records of a file, in order, each validated or with its problem."""
    if fmt == "ndjson":
        yield from _ndjson_rows(stream)
        return
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        yield from _csv_rows(text) if fmt == "csv" else _json_rows(text)
    finally:
        # The stream stays the caller's to close (it may be standard input).
        text.detach()


def _ndjson_rows(stream: IO[bytes]) -> Iterator[ImportRow]:
    for number, line in enumerate(stream, 1):
        if number == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        if line.isspace() or not line:
            continue
        try:
            record = UserRecordIn.model_validate_json(line)
        except ValidationError as exc:
            yield ImportRow(number, problem=describe(exc), userid=_userid_in(line))
        else:
            yield ImportRow(number, record=record, userid=record.userid)


def _json_rows(text: IO[str]) -> Iterator[ImportRow]:
    number = 0
    try:
        for number, value in _array_elements(text):
            yield validate(number, value)
    except _Malformed as exc:
        yield ImportRow(max(number, 1) if exc.before else number + 1, problem=str(exc))
    except UnicodeDecodeError as exc:
        yield ImportRow(number + 1, problem=f"the file is not UTF-8: {exc.reason}")


def _csv_rows(text: IO[str]) -> Iterator[ImportRow]:
    reader = csv.reader(text, strict=True)
    header: list[str] | None = None
    start = 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not cells:
                continue
            if header is None:
                problem = _header_problem(cells)
                if problem:
                    yield ImportRow(line, problem=problem)
                    return
                header = cells
                continue
            if len(cells) != len(header):
                problem = f"has {len(cells)} fields where the header names {len(header)}"
                yield ImportRow(line, problem=problem, userid=cells[0] or None)
                continue
            fields: dict[str, Any] = dict(zip(header, cells, strict=True))
            if not fields["userid"]:
                # An empty cell is CSV's only way to leave a value out.
                del fields["userid"]
            if "groups" in fields:
                fields["groups"] = _csv_groups(fields["groups"])
            yield validate(line, fields)
    except csv.Error as exc:
        yield ImportRow(start, problem=f"malformed CSV: {exc}")
    except UnicodeDecodeError as exc:
        yield ImportRow(start, problem=f"the file is not UTF-8: {exc.reason}")
    if header is None:
        yield ImportRow(1, problem=f"the CSV header is missing: {','.join(CSV_HEADER)}")


def _header_problem(cells: list[str]) -> str | None:
    expected = ",".join(CSV_HEADER)
    unknown = [cell for cell in cells if cell not in CSV_HEADER]
    if unknown:
        return f"the header names unknown columns {unknown}; it must be {expected}"
    if len(set(cells)) != len(cells):
        return f"the header names a column twice; it must be {expected}"
    missing = [name for name in CSV_HEADER[:3] if name not in cells]
    if missing:
        return f"the header lacks the columns {missing}; it must be {expected}"
    return None


def _csv_groups(cell: str) -> list[str]:
    # Names hold no spaces: "a; b" is forgiven, an empty entry is not.
    return [name.strip() for name in cell.split(CSV_GROUP_SEPARATOR)] if cell else []


def validate(line: int, value: Any) -> ImportRow:
    """One record, checked by the API's schema."""
    try:
        record = UserRecordIn.model_validate(value)
    except ValidationError as exc:
        userid = value.get("userid") if isinstance(value, Mapping) else None
        return ImportRow(line, problem=describe(exc), userid=_str_or_none(userid))
    return ImportRow(line, record=record, userid=record.userid)


def describe(exc: ValidationError) -> str:
    """A validation error as 'field: message; ...', fields named as the API names them."""
    return "; ".join(
        f"{_field(error)}: {error_message(error, resource='a user record')}"
        for error in exc.errors()
    )


def _field(error: Mapping[str, Any]) -> str:
    name = ""
    for part in error_location(error):
        name = f"{name}[{part}]" if isinstance(part, int) else f"{name}.{part}" if name else part
    return name or "record"


def _userid_in(line: bytes) -> str | None:
    """The userid of a line that failed validation, if it can be read at all."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return _str_or_none(value.get("userid")) if isinstance(value, dict) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class _Malformed(Exception):
    """The array cannot be read on; `before`: the problem is in the last element read."""

    def __init__(self, message: str, *, before: bool = False) -> None:
        super().__init__(message)
        self.before = before


def _array_elements(text: IO[str]) -> Iterator[tuple[int, Any]]:
    """(number, value) of each element of the one JSON array in the file, read in chunks."""
    decoder = json.JSONDecoder()
    buffer, pos, eof = "", 0, False

    def more() -> bool:
        nonlocal buffer, pos, eof
        chunk = "" if eof else text.read(_CHUNK)
        if not chunk:
            eof = True
            return False
        buffer, pos = buffer[pos:] + chunk, 0
        return True

    def peek() -> str:
        """The next character that is not whitespace ('' at the end of the file)."""
        nonlocal pos
        while True:
            match = _WHITESPACE.match(buffer, pos)
            pos = match.end() if match else pos
            if pos < len(buffer):
                return buffer[pos]
            if not more():
                return ""

    if peek() != "[":
        raise _Malformed("a JSON import file holds one array of user records: [{...}, ...]")
    pos += 1
    number = 0
    if peek() == "]":
        pos += 1
    else:
        while True:
            number += 1
            if not peek():
                raise _Malformed("the file ends inside the array", before=True)
            while True:
                try:
                    value, end = decoder.raw_decode(buffer, pos)
                except json.JSONDecodeError as exc:
                    # Cut off by the end of the chunk, or truly malformed?
                    cut = exc.pos >= len(buffer) - 16 or exc.msg.startswith("Unterminated")
                    if cut and len(buffer) - pos < _MAX_ELEMENT and more():
                        continue
                    raise _Malformed(f"malformed JSON: {exc.msg}") from None
                # A number or literal at the very end may go on in the next chunk.
                if end == len(buffer) and more():
                    continue
                break
            pos = end
            yield number, value
            after = peek()
            pos += 1
            if after == "]":
                break
            if after != ",":
                raise _Malformed(
                    "malformed JSON: expected ',' or ']' after this element"
                    if after
                    else "the file ends inside the array",
                    before=True,
                )
    if peek():
        raise _Malformed("there is more after the array's closing ']'", before=True)


# --- writing ---


class RecordWriter:
    """Writes exported users to a text stream in one format (an ExportSink)."""

    def __init__(self, out: IO[str], fmt: str) -> None:
        self.out, self.fmt = out, fmt
        self.written = 0
        self._encoder = json.JSONEncoder(ensure_ascii=False)
        self._csv = csv.writer(out, lineterminator="\n")

    def start(self, total: int) -> None:
        if self.fmt == "csv":
            self._csv.writerow(CSV_HEADER)
        elif self.fmt == "json":
            self.out.write("[")

    def write(self, users: Sequence[ExportedUser]) -> None:
        if self.fmt == "csv":
            self._csv.writerows(
                (userid, first, last, CSV_GROUP_SEPARATOR.join(groups))
                for userid, first, last, groups in users
            )
        else:
            # What json.dumps(record) writes, string by string: without a
            # dict and an encoder pass per record, twice as fast.
            encode = self._encoder.encode
            lines = [
                _JSON_RECORD
                % (encode(first), encode(last), encode(userid), ", ".join(map(encode, groups)))
                for userid, first, last, groups in users
            ]
            if self.fmt == "ndjson":
                self.out.write("\n".join(lines) + "\n" if lines else "")
            elif lines:
                # One element per line; the first one follows "[".
                lead = "\n" if self.written == 0 else ",\n"
                self.out.write(lead + ",\n".join(lines))
        self.written += len(users)

    def finish(self) -> None:
        if self.fmt == "json":
            self.out.write("\n]\n" if self.written else "]\n")
