"""Municipal CSV batch files: `;`-separated, ISO-8859-15, DD.MM.YYYY, one record per row.

A file carries many records; the hub treats each record as one message (the file drop splits files
and joins outgoing records with `join`). Which columns a record has, in which order, and where each
goes in the canonical model is data: the contract's municipal-csv.schema.json (JSON Schema of one row
plus `x-columns` and per-column `x-path` / `x-type`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hub.adapters.base import Adapter
from hub.canonical import Header
from hub.findings import Finding, Refusal
from hub.schemas.registry import Contract
from hub.translator import get_path, put_path

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


class MunicipalCsvAdapter(Adapter):
    format = "municipal-csv"
    media_type = "text/csv"

    def __init__(self, contracts_dir: Path) -> None:
        super().__init__(contracts_dir)
        self.delimiter: str = self.spec["delimiter"]
        self.encoding: str = self.spec["encoding"]
        self.tz = ZoneInfo(self.spec["timezone"])
        self.header_columns: dict[str, str] = self.spec["header_columns"]

    # -- reading -----------------------------------------------------------------------------------
    def parse(self, data: bytes) -> Rows:
        if data.startswith(BOM):
            try:
                text = data[len(BOM) :].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Refusal("bad-encoding", "The file has a UTF-8 byte order mark but is not UTF-8", [Finding(exc.reason)]) from None
        else:
            text = data.decode(self.encoding)  # every byte is a character in ISO-8859-15
        if "\x00" in text:
            raise Refusal("bad-encoding", f"The file is not {self.encoding} text (it contains NUL bytes)")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter, strict=True)
        rows = Rows()
        try:
            columns = [c.strip() for c in next(reader)]
            for record in reader:
                if not any(cell.strip() for cell in record):
                    continue
                if len(record) != len(columns):
                    raise Refusal(
                        "malformed",
                        "A record has a different number of fields than the header line",
                        [Finding(f"{len(record)} fields, the header has {len(columns)}", line=reader.line_num)],
                    )
                rows.append((reader.line_num, {c: v.strip() for c, v in zip(columns, record) if v.strip()}))
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
        first = rows[0][1]
        return {
            "message_type": first.get("satzart"),
            "version": first.get("version"),
            "sender": first.get("absender"),
            "message_uuid": first.get("nachrichtenUUID"),
            "reference_uuid": first.get("bezugUUID"),
        }

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
        if kind == "date":
            return dt.date.fromisoformat(value).strftime("%d.%m.%Y")
        if kind == "findings":
            return " | ".join(f"{f['location']}: {f['message']}" if f.get("location") else f["message"] for f in value)
        return legacy_text(str(value), self.encoding)

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
                row[column] = self._format_timestamp(header.created_at) if path == "created_at" else str(value)
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

    @staticmethod
    def split(data: bytes) -> list[tuple[int, bytes]]:
        """One file -> (line number, single-record file) per record, each with the header line."""
        lines = data.splitlines(keepends=True)
        header = lines[0]
        return [(n, header + line) for n, line in enumerate(lines[1:], start=2) if line.strip()]

    @staticmethod
    def join(records: list[bytes]) -> bytes:
        """Single-record files of one contract -> one batch file with one header line."""
        header = records[0].splitlines(keepends=True)[0]
        return header + b"".join(b"".join(r.splitlines(keepends=True)[1:]) for r in records)
