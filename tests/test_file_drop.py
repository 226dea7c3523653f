"""Municipal batch files: ISO-8859-15 CSV in a drop directory, many records per file, taken only
when complete, each record one message; the hub's answers and deliveries come back as files written
atomically."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.store import db
from hub.endpoints.file_drop import FileDrop, atomic_write
from hub.runtime import Hub
from hub.store.tables import deliveries, messages
from tests.conftest import JOBCENTER, agency_sample, drain, encode

PARTNER = "sozialamt-altstadt"
COLUMNS = "satzart;version;nachrichtenUUID;erstellungszeitpunkt;absender;empfaenger;kundennummer;bgNummer;vorname;familienname;geburtsname;geburtsdatum;geschlecht;strasse;hausnummer;postleitzahl;ort;telefon;email"


def record(given: str, family: str, postcode: str = "01067", birth: str = "09.03.1978", uid: str | None = None) -> str:
    uid = uid or str(uuid.uuid4())
    return f"person.stammdaten.0100;1.0;{uid};25.11.2026 08:15;{PARTNER};{JOBCENTER};123D45678{len(given) % 10};;{given};{family};;{birth};w;Hauptstraße;3;{postcode};Altstadt;;"


@pytest.fixture
def drop(hub: Hub, tmp_path: Path) -> FileDrop:
    return FileDrop(hub, root=tmp_path / "drop", settle=0)


def put_file(drop: FileDrop, hub: Hub, name: str, lines: list[str]) -> Path:
    inbox = drop.inbox(hub.partners[PARTNER])
    path = inbox / name
    atomic_write(path, ("\r\n".join([COLUMNS, *lines]) + "\r\n").encode("iso-8859-15"))
    return path


def count(hub: Hub) -> int:
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()


def test_batch_file_records_become_messages_and_bad_records_are_answered_by_line(hub: Hub, drop: FileDrop) -> None:
    path = put_file(drop, hub, "stammdaten.csv", [record("Jürgen", "Müller"), record("Anna", "Groß", postcode="1067"), record("Öznur", "Öztürk-Weiß")])
    assert drop.scan() == 0, "a file is taken only after it kept its size for one scan"
    assert drop.scan() == 1
    assert count(hub) == 2, "the two valid records must be stored, the invalid one not"
    assert not path.exists() and (path.parent / "processed" / "stammdaten.csv").exists()

    (answer,) = list(drop.outbox(hub.partners[PARTNER]).glob("rueckweisung_*.csv"))
    text = answer.read_bytes().decode("iso-8859-15")
    assert "stammdaten.csv line 3" in text and "postleitzahl" in text, text

    drain(hub)
    with db.read(hub.engine) as conn:
        bodies = [r.body.decode() for r in conn.execute(sa.select(deliveries.c.body).where(deliveries.c.recipient == JOBCENTER))]
    assert any("<fk:familienname>Müller</fk:familienname>" in b for b in bodies), "umlauts must survive ISO-8859-15 -> XML"
    assert any("<fk:geburtsdatum>1978-03-09</fk:geburtsdatum>" in b for b in bodies), "DD.MM.YYYY must become an ISO date"
    assert any("<fk:postleitzahl>01067</fk:postleitzahl>" in b for b in bodies), "leading zeros must be kept"


def test_half_written_files_are_never_taken(hub: Hub, drop: FileDrop) -> None:
    inbox = drop.inbox(hub.partners[PARTNER])
    (inbox / ".upload.csv.tmp").write_bytes(COLUMNS.encode())
    (inbox / "upload.part").write_bytes(COLUMNS.encode())
    growing = inbox / "growing.csv"
    growing.write_bytes((COLUMNS + "\r\n").encode())
    assert drop.scan() == 0
    with open(growing, "ab") as fh:
        fh.write((record("Eva", "Klein") + "\r\n").encode("iso-8859-15"))
    assert drop.scan() == 0, "a file that is still growing must wait"
    assert drop.scan() == 1
    assert count(hub) == 1


def test_the_same_file_dropped_twice_creates_nothing_twice(hub: Hub, drop: FileDrop) -> None:
    lines = [record("Jürgen", "Müller"), record("Eva", "Klein")]
    put_file(drop, hub, "a.csv", lines)
    drop.scan(), drop.scan()
    put_file(drop, hub, "a.csv", lines)
    drop.scan(), drop.scan()
    assert count(hub) == 2, "resent records (same nachrichtenUUID) must not become new messages"


def test_deliveries_leave_as_one_iso_8859_15_batch_file_written_atomically(hub: Hub, drop: FileDrop, tokens: dict[str, str]) -> None:
    from hub.endpoints import ingress

    for given in ("Jürgen", "Ayşe"):
        data = agency_sample("person.stammdaten.0100")
        data["header"]["reader"] = {"id": PARTNER}
        data["body"]["person"]["given_name"] = given
        data["body"]["person"]["family_name"] = "Yılmaz"
        ingress.accept(hub, hub.partners[JOBCENTER], encode(hub, "agency-xml", data), "application/xml")
    drain(hub)
    assert drop.deliver() == 2
    out = drop.outbox(hub.partners[PARTNER])
    (batch,) = [p for p in out.glob("person.stammdaten.0100_*.csv")]
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary file may remain"
    text = batch.read_bytes().decode("iso-8859-15")
    lines = text.strip().splitlines()
    assert lines[0].startswith("satzart;version;nachrichtenUUID") and len(lines) == 3, "one header line, one line per record"
    assert "Jürgen" in text and "Ayşe" not in text and "Ayse" in text, "letters outside ISO-8859-15 fall back to the base letter"
    assert "Yilmaz" in text and "09.03.1978" in text and ";01067;" in text
    assert drop.deliver() == 0, "written deliveries are acknowledged and not written again"
    with db.read(hub.engine) as conn:
        statuses = {r.status for r in conn.execute(sa.select(deliveries.c.status).where(deliveries.c.recipient == PARTNER))}
    assert statuses == {"acknowledged"}


def test_a_quoted_line_break_stays_in_its_record_and_refusals_name_the_files_lines(hub: Hub, drop: FileDrop) -> None:
    """Records are found by a CSV parser: a cell with a line break (quoted, as CSV allows) no longer
    splits its record in two broken ones, and a later refused record is named by its line in the file."""
    two_lines = record("Anna", "Groß").replace(";Hauptstraße;", ';"Hauptstraße\r\nHinterhaus";')
    put_file(drop, hub, "umbruch.csv", [two_lines, record("Eva", "Klein", postcode="1067"), record("Öznur", "Öztürk")])
    drop.scan(), drop.scan()
    assert count(hub) == 2, "the record with the line break and the one after the refused record must be stored"
    (answer,) = list(drop.outbox(hub.partners[PARTNER]).glob("rueckweisung_*.csv"))
    text = answer.read_bytes().decode("iso-8859-15")
    assert "umbruch.csv line 4" in text and "line 2" not in text and "line 3" not in text, f"the refused record starts on line 4: {text}"


def test_a_utf16_file_gets_one_rueckweisung_saying_so_and_nothing_is_stored(hub: Hub, drop: FileDrop) -> None:
    """A UTF-16 export used to be answered with one "contains NUL bytes" rejection per line."""
    inbox = drop.inbox(hub.partners[PARTNER])
    lines = [record("Jürgen", "Müller"), record("Eva", "Klein"), record("Anna", "Groß")]
    atomic_write(inbox / "unicode.csv", ("\r\n".join([COLUMNS, *lines]) + "\r\n").encode("utf-16"))
    drop.scan(), drop.scan()
    assert count(hub) == 0, "no record of a UTF-16 file may be stored"
    assert (inbox / "processed" / "unicode.csv").exists(), "the file is moved aside like any other"
    (answer,) = list(drop.outbox(hub.partners[PARTNER]).glob("rueckweisung_*.csv"))
    text = answer.read_bytes().decode("iso-8859-15")
    records = text.strip().splitlines()[1:]
    assert len(records) == 1, f"one rejection for the file, not one per line: {text}"
    assert "UTF-16 is not accepted; use ISO-8859-15 or UTF-8 with a byte order mark" in text and "NUL" not in text, text
