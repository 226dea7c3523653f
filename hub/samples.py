"""Sample messages: the contract examples and the demo case chain are built from these.

Examples are built as canonical messages and encoded by the adapters, so every example is what the
hub itself would send; tests check each one validates against its contract and round-trips.
`python -m hub.samples` rewrites contracts/messages/<type>/<version>/examples/.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from hub.adapters import get_adapter
from hub.adapters.base import load_format
from hub.canonical import Message

CONTRACTS = Path("contracts")
BERLIN = dt.timezone(dt.timedelta(hours=1))

JOBCENTER = {"id": "jobcenter-musterstadt", "name": "Jobcenter Musterstadt"}
PROVIDER = {"id": "traeger-bildungswerk", "name": "Bildungswerk Nord gGmbH"}
MUNICIPAL = {"id": "kreis-musterland", "name": "Kreis Musterland"}

PERSON = {
    "given_name": "Jürgen",
    "family_name": "Müller-Lüdenscheidt",
    "birth_name": "Groß",
    "birth_date": "1978-03-09",
    "sex": "m",
    "address": {"street": "Straße des 17. Juni", "house_number": "12a", "postcode": "01067", "city": "Dresden"},
    "contact": {"phone": "+49 351 123456", "email": "j.mueller@example.org"},
}


#: a minimal, valid PDF document (one empty page) for attachments, base64
SAMPLE_PDF = base64.b64encode(
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
).decode("ascii")


def header(message_type: str, author: dict, reader: dict | None, purpose: str, legal_basis: str, n: int | None) -> dict:
    """A header; `n` gives a fixed UUID (examples), None a fresh one (demo runs)."""
    return {
        "message_uuid": str(uuid.UUID(int=n * 7919 + 1234567) if n is not None else uuid.uuid4()),
        "message_type": message_type,
        "created_at": dt.datetime(2026, 11, 2, 9, 30, tzinfo=BERLIN).isoformat(),
        "author": author,
        "reader": reader,
        "purpose": purpose,
        "legal_basis": legal_basis,
        "version": "1.0",
        "test": True,
    }


#: persons a fresh demo client is made of (given name, family name, sex)
_DEMO_NAMES = (
    ("Jürgen", "Müller-Lüdenscheidt", "m"), ("Ayşe", "Yılmaz", "w"), ("Łukasz", "Kowalski", "m"), ("Grete", "Weiß", "w"),
    ("Mohammed", "Al-Hassan", "m"), ("Olena", "Kusnezowa", "w"), ("Dieter", "von Bülow", "m"), ("Öznur", "Öztürk", "w"),
)


@dataclass(frozen=True)
class Client:
    """Whom the samples concern: the agency's ids for the client and the person's data."""

    customer_number: str = "123D456789"
    bg_number: str = "12345BG0000001"
    person: dict = field(default_factory=lambda: copy.deepcopy(PERSON))

    @classmethod
    def fresh(cls, rng: random.Random | None = None) -> Client:
        """A client no earlier run has used: new Kundennummer and BG-Nummer, a person of the demo names."""
        rng = rng or random.Random()
        given, family, sex = rng.choice(_DEMO_NAMES)
        person = copy.deepcopy(PERSON) | {"given_name": given, "family_name": family, "sex": sex, "birth_name": None}
        person["birth_date"] = dt.date(1960, 1, 1).replace(year=rng.randint(1960, 2004), month=rng.randint(1, 12), day=rng.randint(1, 28)).isoformat()
        person = {k: v for k, v in person.items() if v is not None}
        return cls(f"{rng.randint(100, 999)}D{rng.randint(0, 999_999):06d}", f"{rng.randint(10_000, 99_999)}BG{rng.randint(0, 9_999_999):07d}", person)


def agency_side(fmt: str, contracts_dir: Path = CONTRACTS) -> bool:
    """A format that may carry the agency's Kundennummer (its file does not exclude it) is the
    Jobcenter's or a municipal office's; a provider's format names a case by the hub's pseudonym."""
    return "customer_number" not in (load_format(contracts_dir.resolve(), fmt).get("exclude") or ())


def samples(
    fmt: str, fresh: bool = False, case_id: str = "F-7Q2K9M4X1B", client: Client | None = None, contracts_dir: Path = CONTRACTS
) -> dict[str, dict]:
    """One sample message per type, as its sender in format `fmt` would write it, about `client`."""
    agency = agency_side(fmt, contracts_dir)
    sender = JOBCENTER if agency else PROVIDER
    client = client or Client()
    person = client.person

    def n(number: int) -> int | None:
        return None if fresh else number

    def ids(fmt: str) -> dict:
        return {"customer_number": client.customer_number, "bg_number": client.bg_number} if agency else {"case_id": case_id}

    return {
        "person.stammdaten.0100": {
            "header": header("person.stammdaten.0100", JOBCENTER, MUNICIPAL, "kommunale_leistung", "§ 50 Abs. 1 SGB II", n(1)),
            "body": {"customer_number": client.customer_number, "bg_number": client.bg_number, "person": copy.deepcopy(person)},
        },
        "zuweisung.anmeldung.1020": {
            "header": header("zuweisung.anmeldung.1020", JOBCENTER, PROVIDER, "massnahmedurchfuehrung", "§ 16d SGB II", n(2)),
            "body": {
                **ids(fmt),
                "measure_number": "962-AGH-2026-0042",
                "branch": "06",
                "participant": copy.deepcopy({k: person[k] for k in ("given_name", "family_name", "birth_date", "sex", "address")}),
                "period_start": "2026-12-01",
                "period_end": "2027-05-31",
                "weekly_hours": "25.0",
                "schedule": "Mo-Fr 8:00-13:00",
                "expense_allowance": "1.50",
                "travel_costs": "49.00",
                "goal": "Tagesstruktur festigen; Grundlagen im Garten- und Landschaftsbau.",
                "case_worker": {"name": "Frau Yılmaz", "phone": "+49 30 1234-117", "email": "a.yilmaz@jobcenter-musterstadt.example"},
                "answer_by": "2026-11-20",
            },
        },
        "teilnahme.anwesenheit.2030": {
            "header": header("teilnahme.anwesenheit.2030", sender, JOBCENTER, "teilnahmenachweis", "§ 61 Abs. 2 SGB II", n(3)),
            "body": {
                **ids(fmt),
                "measure_number": "962-AGH-2026-0042",
                "month": "2026-12",
                "days": [
                    {"date": "2026-12-01", "code": "anwesend_vor_ort"},
                    {"date": "2026-12-02", "code": "anwesend_online"},
                    {"date": "2026-12-03", "code": "fehltag"},
                    {"date": "2026-12-04", "code": "beratung"},
                ],
                "absences": [{"date": "2026-12-03", "reason": "krank_mit_au"}],
                "week_absences": [{"week": "2026-W49", "hours": "6.5"}],
            },
        },
        "teilnahme.mitwirkung.2040": {
            "header": header("teilnahme.mitwirkung.2040", sender, JOBCENTER, "eingliederung", "§ 61 Abs. 1 SGB II", n(4)),
            "body": {
                **ids(fmt),
                "measure_number": "962-AGH-2026-0042",
                "event": "unentschuldigtes_fehlen",
                "event_date": "2026-12-09",
                "facts": "Nicht erschienen am 08.12. und 09.12.; telefonisch nicht erreichbar, Brief am 09.12. versandt.",
                "decision_requested_by": "2026-12-20",
                "contact_attempts": ["2026-12-08", "2026-12-09"],
            },
        },
        "zuweisung.kontakt.1010": {
            "header": header("zuweisung.kontakt.1010", JOBCENTER, PROVIDER, "massnahmedurchfuehrung", "§ 16d SGB II", n(7)),
            "body": {
                **ids(fmt),
                "measure_number": "962-AGH-2026-0042",
                "branch": "06",
                "participant": copy.deepcopy({k: person[k] for k in ("given_name", "family_name", "birth_date", "sex", "address", "contact")}),
                "case_worker": {"name": "Frau Yılmaz", "phone": "+49 30 1234-117", "email": "a.yilmaz@jobcenter-musterstadt.example"},
                "answer_by": "2026-11-16",
            },
        },
        "zuweisung.rueckmeldung.1030": {
            "header": {**header("zuweisung.rueckmeldung.1030", sender, JOBCENTER, "eingliederung", "§ 50 Abs. 1 SGB II", n(8)),
                       "reference_uuid": str(uuid.UUID(int=7 * 7919 + 1234567))},
            "body": {**ids(fmt), "measure_number": "962-AGH-2026-0042", "answer": "zusage", "earliest_start": "2026-12-01"},
        },
        "teilnahme.eintritt.2010": {
            "header": header("teilnahme.eintritt.2010", sender, JOBCENTER, "eingliederung", "§ 50 Abs. 1 SGB II", n(9)),
            "body": {**ids(fmt), "measure_number": "962-AGH-2026-0042", "started": True, "start_date": "2026-12-01"},
        },
        "teilnahme.aenderung.2020": {
            "header": {**header("teilnahme.aenderung.2020", JOBCENTER, PROVIDER, "massnahmedurchfuehrung", "§ 16d SGB II", n(10)),
                       "reference_uuid": str(uuid.UUID(int=4 * 7919 + 1234567))},
            "body": {
                **ids(fmt),
                "measure_number": "962-AGH-2026-0042",
                "change_kind": "entscheidung_fortsetzung",
                "effective_date": "2026-12-21",
                "feedback_uuid": str(uuid.UUID(int=4 * 7919 + 1234567)),
            },
        },
        "teilnahme.austritt.2050": {
            "header": header("teilnahme.austritt.2050", sender, JOBCENTER, "eingliederung", "§ 50 Abs. 1 SGB II", n(11)),
            "body": {
                **ids(fmt),
                "measure_number": "962-AGH-2026-0042",
                "exit_date": "2027-03-12",
                "exit_kind": "abbruch",
                "dropout_reason": "arbeitsaufnahme",
                "destination": "beschaeftigung_svp",
                "remark": "Arbeitsvertrag als Helfer im Garten- und Landschaftsbau ab 15.03.2027 vorgelegt.",
            },
        },
        "bericht.beurteilung.3010": {
            "header": header("bericht.beurteilung.3010", sender, JOBCENTER, "eingliederung", "§ 50 Abs. 1 SGB II", n(12)),
            "body": {
                **ids(fmt),
                "measure_number": "962-AGH-2026-0042",
                "report_kind": "zwischenbericht",
                "period_start": "2026-12-01",
                "period_end": "2027-02-28",
                "assessment": [
                    {"criterion": "puenktlichkeit", "rating": "2", "finding": "An 52 von 55 Anwesenheitstagen pünktlich erschienen."},
                    {"criterion": "teamarbeit", "rating": "3"},
                    {"criterion": "fachkenntnisse", "finding": "Motorsense und Heckenschere nach Einweisung selbstständig bedient."},
                ],
                "shown_to_participant_on": "2027-03-02",
                "attachment": {"media_type": "application/pdf", "file_name": "Zwischenbericht_2027-02.pdf", "content": SAMPLE_PDF},
            },
        },
        "abrechnung.monat.4010": {
            "header": header("abrechnung.monat.4010", sender, JOBCENTER, "eingliederung", "§ 50 Abs. 1 SGB II", n(13)),
            "body": {
                "measure_number": "962-AGH-2026-0042",
                "month": "2026-12",
                "invoice_number": "BWN-2026-12-0042",
                "participant_days_total": 37,
                "lines": [
                    {**({"customer_number": client.customer_number} if agency else {"case_id": case_id}), "participant_days": 19, "amount": "142.50"},
                    {**({"customer_number": "123D456790"} if agency else {"case_id": "F-3H8J2N5P7R"}), "participant_days": 18, "amount": "135.00"},
                ],
                "total_amount": "277.50",
            },
        },
        "administration.quittung.0020": {
            "header": {**header("administration.quittung.0020", {"id": "hub"}, sender, "administration", "§ 80 SGB X", n(5)),
                       "reference_uuid": str(uuid.UUID(int=4 * 7919 + 1234567))},
            "body": {"received_at": dt.datetime(2026, 11, 2, 9, 30, 1, tzinfo=BERLIN).isoformat(), "hub_id": "01JD8W3V5E9X2Q7K4M1N6P0R8T"},
        },
        "administration.rueckweisung.0010": {
            "header": {**header("administration.rueckweisung.0010", {"id": "hub"}, sender, "administration", "§ 80 SGB X", n(6)),
                       "reference_uuid": str(uuid.UUID(int=4 * 7919 + 1234567))},
            "body": {
                "reason": "schema-invalid",
                "detail": "Message does not satisfy its contract",
                "findings": [{"message": "Element 'ereignis': This element is not expected.", "location": "line 14, column 0"}],
            },
        },
    }


def main() -> None:
    """Encode every sample in every version and format its contract has."""
    from hub.schemas.registry import registry_for

    for (message_type, version, fmt), contract in sorted(registry_for(CONTRACTS.resolve()).contracts.items()):
        data = samples(fmt)[message_type]
        message = Message.build({**data["header"], "version": version}, data["body"])
        out = contract.schema_path.parent / "examples" / f"example.{contract.extension}"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(get_adapter(CONTRACTS.resolve(), fmt).encode(message, version))
        print(out.relative_to(CONTRACTS.resolve().parent))


if __name__ == "__main__":
    main()
