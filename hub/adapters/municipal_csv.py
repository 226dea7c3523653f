"""Municipal CSV batch files: `;`-separated, ISO-8859-15, DD.MM.YYYY, one record per row.

A file carries many records; the hub treats each record as one message (the file drop splits files
with `split` and joins outgoing records with `join`), so a message -- what `parse` reads, e.g. over
HTTP -- is exactly one record. Which columns a record has, in which order, and where each goes in the
canonical model is data: the contract's municipal-csv.schema.json (JSON Schema of one row plus
`x-columns` and per-column `x-path` / `x-type`).

Two guards of the format (contracts/formats/municipal-csv.yaml): bytes that are UTF-8 without a byte
order mark, or that hold C1 control characters, are refused instead of being read as ISO-8859-15
(names would arrive garbled); and a cell a spreadsheet would run as a formula is written with a
leading single quote, which the reader removes again (`formula_guard`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hub.adapters.base import Adapter, wide_unicode
from hub.canonical import Header
from hub.findings import Finding, Refusal, undecodable
from hub.schemas.registry import Contract
from hub.schemas.translator import get_path, put_path

BOM = b"\xef\xbb\xbf"


@lru_cache(maxsize=None)
def row_schema(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# characters outside ISO-8859-15 that have no decomposition to a Latin base letter (DIN 91379 names)
_FALLBACK = {"ı": "i", "İ": "I", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ħ": "h", "Ħ": "H", "ŋ": "n", "Ŋ": "N", "ø": "o"}


def legacy_text(value: str, encoding: str) -> str:
    """Text a legacy system can store: unrepresentable letters fall back to their base letter.

    Names such as "Yılmaz" or "Łukasz" (DIN 91379) do not exist in ISO-8859-15; rather than refuse the
    delivery, the CSV carries the search form the domain already uses (Yilmaz, Lukasz).
    """
    try:
        value.encode(encoding)
        return value
    except UnicodeEncodeError:
        import unicodedata

        out = []
        for ch in value:
            try:
                ch.encode(encoding)
                out.append(ch)
            except UnicodeEncodeError:
                base = _FALLBACK.get(ch) or "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
                out.append(base if base and all(_encodable(c, encoding) for c in base) else "?")
        return "".join(out)


def _encodable(ch: str, encoding: str) -> bool:
    try:
        ch.encode(encoding)
        return True
    except UnicodeEncodeError:
        return False


class Rows(list):
    """Parsed CSV: (line number, {column: value}) per record, empty cells left out."""

    columns: list[str]


@dataclass(frozen=True)
class FormulaGuard:
    """OWASP's defence against CSV (formula) injection, as the format's data file declares it.

    A clerk opens the hub's batch files in a spreadsheet; a cell starting with = + - @, a tab or a
    carriage return would run as a formula there (`=HYPERLINK(...)` leaks data, DDE starts programs).
    Such a cell is written with a leading single quote, which spreadsheets show as text. Values that
    match `plain` (numbers and telephone numbers such as "+49 351 123456": digits, an optional sign,
    space ( ) / . , - and nothing else) cannot call a function or reference a cell and stay as they
    are, so the legacy system still imports the number it expects. The quote is added to a value
    that starts with quotes and then a trigger too, so the reader can always take exactly one away.
    """

    triggers: str
    prefix: str
    plain: re.Pattern[str]

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> FormulaGuard:
        return cls(spec["triggers"], spec["prefix"], re.compile(spec["plain"]))

    def _marked(self, value: str) -> bool:
        """True if `value` starts with zero or more prefixes and then a trigger character."""
        rest = value.lstrip(self.prefix)
        return bool(rest) and rest[0] in self.triggers

    def neutralise(self, value: str) -> str:
        """The cell to write for `value`."""
        if self._marked(value) and not self.plain.fullmatch(value):
            return self.prefix + value
        return value

    def restore(self, cell: str) -> str:
        """The value a written cell stands for (the inverse of `neutralise`)."""
        if cell.startswith(self.prefix) and self._marked(cell):
            return cell[len(self.prefix) :]
        return cell


#: characters a Latin-script UTF-8 file holds (DIN 91379 letters, punctuation such as „ “ –, €). Bytes
#: that decode as UTF-8 into one of them are taken for UTF-8; ISO-8859-15 text that merely happens to
#: be valid UTF-8 (e.g. "ß" before a no-break space) decodes into other scripts and is read as it is.
_LATIN_UTF8 = re.compile("[\u00a0-\u024f\u1e00-\u1eff\u2000-\u206f\u20a0-\u20cf]")
#: C1 control characters: never text in ISO-8859-15; typical of Windows-1252 files (0x80 is € there)
_C1 = re.compile("[\x80-\x9f]")
_LINE_BREAK = re.compile("\r\n|\r|\n")


def _position(text: str, index: int) -> tuple[int, int]:
    """(line, column), both from 1, of character `index` of `text`, with the line breaks CSV knows."""
    breaks = list(_LINE_BREAK.finditer(text, 0, index))
    start = breaks[-1].end() if breaks else 0
    return len(breaks) + 1, index - start + 1


def _utf8_without_bom(data: bytes) -> tuple[int, str] | None:
    """(index of the first Latin letter written as UTF-8, the text) if `data` is such UTF-8, else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    found = _LATIN_UTF8.search(text)
    return None if found is None else (found.start(), text)


class MunicipalCsvAdapter(Adapter):
    format = "municipal-csv"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:1] not in (b"<", b"{", b"[") and b";" in head.split(b"\n", 1)[0]

    def __init__(self, contracts_dir: Path, fmt: str | None = None) -> None:
        super().__init__(contracts_dir, fmt)
        self.delimiter: str = self.spec["delimiter"]
        self.encoding: str = self.spec["encoding"]
        self.tz = ZoneInfo(self.spec["timezone"])
        self.header_columns: dict[str, str] = self.spec["header_columns"]
        self.guard = FormulaGuard.from_spec(self.spec["formula_guard"])

    # -- reading -----------------------------------------------------------------------------------
    def parse(self, data: bytes) -> Rows:
        """One message: a header line and exactly one record (a file is `split` into such messages).

        Only a message sent over HTTP can hold more: the file drop and `hub contracts validate` split
        a batch file into records first, so the finding names the HTTP channel and the way out."""
        rows = self._rows(self._text(data))
        if len(rows) > 1:
            raise Refusal(
                "schema-invalid",
                f"A message is one record; this one has {len(rows)}",
                [Finding("one record per message over HTTP; use the batch file channel for files", line=rows[1][0])],
            )
        return rows

    def refuse_wide_unicode(self, data: bytes) -> None:
        """UTF-16 and UTF-32 (what spreadsheets export as "Unicode text") are refused by name, for the
        whole file: read as ISO-8859-15 they are NUL bytes between letters on every line."""
        width = wide_unicode(data)
        if width is not None:
            raise Refusal("bad-encoding", f"{width} is not accepted; use {self.encoding.upper()} or UTF-8 with a byte order mark")

    def _text(self, data: bytes) -> str:
        """The bytes as text: UTF-8 after a byte order mark, else ISO-8859-15 -- never a guess that garbles."""
        self.refuse_wide_unicode(data)
        if data.startswith(BOM):
            try:
                text = data[len(BOM) :].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Refusal(
                    "bad-encoding", "The file has a UTF-8 byte order mark but is not UTF-8", [undecodable(exc, "UTF-8", data, offset=len(BOM))]
                ) from None
        else:
            self._refuse_utf8(data)
            text = data.decode(self.encoding)  # every byte is a character in ISO-8859-15
        if "\x00" in text:
            raise Refusal("bad-encoding", f"The file is not {self.encoding} text (it contains NUL bytes)")
        control = _C1.search(text)
        if control is not None:
            line, column = _position(text, control.start())
            raise Refusal(
                "bad-encoding",
                "The file holds a C1 control character (0x80-0x9F), which is no text (a Windows-1252 file?)",
                [Finding(f"character 0x{ord(control.group()):02X} is a C1 control character", line=line, column=column)],
            )
        return text

    def _refuse_utf8(self, data: bytes) -> None:
        """UTF-8 without a byte order mark would be read as ISO-8859-15 ("Jürgen" as "JÃ¼rgen"): refuse it."""
        found = _utf8_without_bom(data)
        if found is None:
            return
        index, text = found
        line, column = _position(text, index)
        raise Refusal(
            "bad-encoding",
            f"The file is UTF-8 without a byte order mark; municipal CSV is {self.encoding} (or UTF-8 starting with a byte order mark)",
            [Finding(f"{text[index]!r} is UTF-8 encoded", line=line, column=column)],
        )

    def _rows(self, text: str) -> Rows:
        """Every record with the line it starts on; cells stripped, guarded cells restored, empty ones left out."""
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter, strict=True)
        rows = Rows()
        try:
            columns = [c.strip() for c in next(reader)]
            while True:
                start = reader.line_num + 1
                try:
                    record = next(reader)
                except StopIteration:
                    break
                if not any(cell.strip() for cell in record):
                    continue
                if len(record) != len(columns):
                    raise Refusal(
                        "malformed",
                        "A record has a different number of fields than the header line",
                        [Finding(f"{len(record)} fields, the header has {len(columns)}", line=start)],
                    )
                rows.append((start, {c: self.guard.restore(v.strip()) for c, v in zip(columns, record) if v.strip()}))
        except StopIteration:
            raise Refusal("malformed", "The file is empty") from None
        except csv.Error as exc:
            raise Refusal("malformed", "The CSV is not well-formed", [Finding(str(exc), line=reader.line_num)]) from None
        rows.columns = columns
        if not rows:
            raise Refusal("malformed", "The file has a header line but no record")
        return rows

    def peek_header(self, data: bytes, rows: Rows | None = None) -> dict[str, Any]:
        rows = self.parse(data) if rows is None else rows
        line, first = rows[0]
        reader_column = self._reader_column()
        return {
            "message_type": first.get("satzart"),
            "version": first.get("version"),
            "sender": first.get("absender"),
            "reader": first.get(reader_column),
            "reader_at": {
                "field": reader_column,
                "line": line,
                "column": rows.columns.index(reader_column) + 1 if reader_column in rows.columns else None,
            },
            "message_uuid": first.get("nachrichtenUUID"),
            "reference_uuid": first.get("bezugUUID"),
        }

    def _reader_column(self) -> str:
        """The column that names the reader (empfaenger), as the format's header_columns map it."""
        return next((column for column, path in self.header_columns.items() if path == "reader.id"), "empfaenger")

    def texts(self, data: bytes, rows: Rows, contract: Contract, every: bool) -> Iterator[tuple[str, dict[str, Any], str]]:
        """Every cell, with its line and column (a cell may hold an ESC or another C0 control)."""
        paths = {column: prop.get("x-path", column) for column, prop in row_schema(contract.schema_path)["properties"].items()}
        for line, row in rows:
            for column, value in row.items():
                position = rows.columns.index(column) + 1 if column in rows.columns else None
                yield paths.get(column, column).rsplit(".", 1)[-1], {"line": line, "column": position}, value

    def read(self, data: bytes, rows: Rows, contract: Contract) -> tuple[dict[str, Any], dict[str, Any]]:
        schema = row_schema(contract.schema_path)
        _, row = rows[0]
        header: dict[str, Any] = {"test": False}
        for column, path in self.header_columns.items():
            if column in row:
                value = self._timestamp(row[column]) if path == "created_at" else row[column]
                put_path(header, path, value)
        header.update(self.spec["defaults"].get(contract.message_type, {}))
        body: dict[str, Any] = {}
        for column, prop in schema["properties"].items():
            if "x-path" in prop and column in row:
                put_path(body, prop["x-path"], self._cell_in(row[column], prop.get("x-type")))
        return header, body

    def _cell_in(self, value: str, kind: str | None) -> Any:
        if kind == "date":
            try:
                return dt.datetime.strptime(value, "%d.%m.%Y").date().isoformat()
            except ValueError:
                raise Refusal("schema-invalid", "A date in the record does not exist", [Finding(f"{value!r} is not a calendar date (DD.MM.YYYY)")]) from None
        if kind == "findings":
            return [{"message": part.strip()} for part in value.split(" | ") if part.strip()]
        return value

    def _cell_out(self, value: Any, kind: str | None) -> str:
        """The cell for one value: dates as DD.MM.YYYY, text the legacy system can store, no formulas."""
        if kind == "date":
            return dt.date.fromisoformat(value).strftime("%d.%m.%Y")  # starts with a digit: never guarded
        if kind == "findings":
            text = " | ".join(f"{f['location']}: {f['message']}" if f.get("location") else f["message"] for f in value)
        else:
            text = str(value)
        return self.guard.neutralise(legacy_text(text, self.encoding))

    def _timestamp(self, value: str) -> str:
        fmt = "%d.%m.%Y %H:%M:%S" if value.count(":") == 2 else "%d.%m.%Y %H:%M"
        return dt.datetime.strptime(value, fmt).replace(tzinfo=self.tz).isoformat()

    def paths(self, contract: Contract) -> frozenset[str]:
        out: set[str] = set()
        for prop in row_schema(contract.schema_path)["properties"].values():
            if "x-path" in prop:
                parts = prop["x-path"].split(".")
                out.update(".".join(parts[: i + 1]) for i in range(len(parts)))
                if prop.get("x-type") == "findings":  # a list of findings folded into one cell
                    out.update({prop["x-path"] + ".message", prop["x-path"] + ".location"})
        return frozenset(out)

    # -- writing -----------------------------------------------------------------------------------
    def write(self, header: Header, body: dict[str, Any], contract: Contract) -> bytes:
        schema = row_schema(contract.schema_path)
        head = header.model_dump(mode="json")
        row: dict[str, str] = {}
        for column, path in self.header_columns.items():
            value = get_path(head, path)
            if value is not None:
                row[column] = self._format_timestamp(header.created_at) if path == "created_at" else self.guard.neutralise(str(value))
        for column, prop in schema["properties"].items():
            value = get_path(body, prop["x-path"]) if "x-path" in prop else None
            if value is not None:
                row[column] = self._cell_out(value, prop.get("x-type"))
        out = io.StringIO(newline="")
        writer = csv.writer(out, delimiter=self.delimiter, lineterminator="\r\n")
        writer.writerow(schema["x-columns"])
        writer.writerow([row.get(c, "") for c in schema["x-columns"]])
        return out.getvalue().encode(self.encoding, errors="strict")

    def _format_timestamp(self, value: dt.datetime) -> str:
        return value.astimezone(self.tz).strftime("%d.%m.%Y %H:%M:%S")

    def split(self, data: bytes) -> list[tuple[int, bytes]]:
        """One file -> (line number, single-record file) per record, each with the header line.

        Records are found by the csv module, so a quoted cell with a line break stays in its record;
        the bytes of each record are passed on unchanged (its line number is the one it starts on).
        The structure (delimiter, quotes, line breaks) is ASCII in every encoding the format allows,
        so the bytes are cut as Latin-1 text; `parse` decides about the encoding of each record. A
        record the csv module cannot read (an unterminated quote) is passed on as it is and refused
        by `parse` with its finding. A UTF-16 or UTF-32 file is refused as a whole (Refusal)."""
        self.refuse_wide_unicode(data)  # its line breaks are two or four bytes: cut, it would be a refusal per line
        lines = data.splitlines(keepends=True)  # bytes: only \r, \n and \r\n end a line
        reader = csv.reader((line.decode("latin-1") for line in lines), delimiter=self.delimiter, strict=True)
        spans: list[tuple[int, int]] = []
        while reader.line_num < len(lines):
            start = reader.line_num
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error:
                record = ["broken"]  # not blank: ingress refuses it with the csv module's finding
            if reader.line_num <= start:
                break  # read nothing: never loop
            if any(cell.strip() for cell in record):
                spans.append((start, reader.line_num))
        if not spans:
            return []
        (header_start, header_end), records = spans[0], spans[1:]
        header = b"".join(lines[header_start:header_end])
        return [(start + 1, header + b"".join(lines[start:end])) for start, end in records]

    @staticmethod
    def join(records: list[bytes]) -> bytes:
        """Single-record files of one contract -> one batch file with one header line."""
        header = records[0].splitlines(keepends=True)[0]
        return header + b"".join(b"".join(r.splitlines(keepends=True)[1:]) for r in records)
