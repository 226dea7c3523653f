"""The canonical data model: the one shape every partner format is translated into and out of.

Adapters never translate partner to partner; they translate partner <-> canonical, so N formats need
N adapters, not N x N translators (EIP: Canonical Data Model). Field descriptions are documentation:
the contract generator copies them into the XSD annotations and JSON Schema descriptions.

Identifiers: `customer_number` (Kundennummer) and `bg_number` (BG-Nummer) are agency identifiers and
never reach a provider; `case_id` is the recipient's own reference for the case (a hub-issued
pseudonym for providers), filled in per recipient by the pipeline.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, SerializeAsAny
from pydantic.alias_generators import to_camel

Text = Annotated[str, Field(min_length=1, max_length=255)]
LongText = Annotated[str, Field(min_length=1, max_length=4000)]
Code = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")]
Postcode = Annotated[str, Field(pattern=r"^[0-9]{5}$", description="Postleitzahl, five digits with leading zeros")]
CustomerNumber = Annotated[
    str, Field(pattern=r"^[0-9A-Z]{3}[0-9A-Z]{4,7}$", description="Kundennummer (agency id, opaque)")
]
BgNumber = Annotated[str, Field(pattern=r"^[0-9]{5}[A-Z]{2}[0-9]{7}$", description="BG-Nummer (household id, opaque)")]
#: decimals travel as JSON numbers (JSON Schema type number), exact enough for hours and cents
AsNumber = PlainSerializer(float, return_type=float, when_used="json")
CaseId = Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{4,40}$", description="the recipient's own case reference")]


class Model(BaseModel):
    # camelCase aliases are the JSON wire names; Python code uses the snake_case names.
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class Party(Model):
    """An organisation as named in the header (XÖV: autor / leser)."""

    id: Code = Field(description="Partner id (Kennung) as registered at the hub")
    name: Text | None = Field(default=None, description="Display name of the organisation")


class Header(Model):
    """The Nachrichtenkopf. `message_uuid` is new per message and kept on a resend."""

    message_uuid: UUID = Field(description="nachrichtenUUID: unique per message, unchanged on resend")
    message_type: Code = Field(description="nachrichtentyp code, e.g. teilnahme.mitwirkung.2040")
    created_at: dt.datetime = Field(description="erstellungszeitpunkt with time zone")
    author: Party = Field(description="autor: the sending organisation")
    reader: Party | None = Field(default=None, description="leser: the addressed organisation, where the sender names one")
    reference_uuid: UUID | None = Field(default=None, description="referenzUUID: the message this one answers")
    purpose: Code = Field(description="zweck: purpose code from the purpose code list")
    legal_basis: Text = Field(description="rechtsgrundlage, e.g. '§ 61 Abs. 2 SGB II'")
    version: Code = Field(description="contract version of the message")
    test: bool = Field(default=False, description="test message: processed, never acted upon")


class Address(Model):
    street: Text = Field(description="Straße")
    house_number: Annotated[str, Field(max_length=20)] | None = Field(default=None, description="Hausnummer")
    postcode: Postcode
    city: Text = Field(description="Ort")
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = Field(
        default=None, description="Staat, ISO 3166-1 alpha-2 (since person.stammdaten.0100 2.0)"
    )


class Contact(Model):
    phone: Annotated[str, Field(max_length=40)] | None = Field(default=None, description="Telefon")
    email: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = Field(default=None, description="E-Mail")


class Person(Model):
    given_name: Text = Field(description="Vorname(n), in the order given")
    family_name: Text = Field(description="Familienname (current)")
    birth_name: Text | None = Field(default=None, description="Geburtsname, where it differs")
    birth_date: dt.date = Field(description="Geburtsdatum")
    sex: Literal["m", "w", "d", "x"] | None = Field(default=None, description="Geschlecht (m, w, d, x)")
    address: Address | None = Field(default=None, description="Anschrift")
    contact: Contact | None = Field(default=None, description="Erreichbarkeit")


class CaseWorker(Model):
    name: Text = Field(description="Name of the responsible case manager (Integrationsfachkraft)")
    phone: Annotated[str, Field(max_length=40)] | None = Field(default=None, description="Telefon")
    email: Annotated[str, Field(max_length=254)] | None = Field(default=None, description="E-Mail")


class Body(Model):
    """Base of every message body; the case identifiers live here so routing can find the case."""


class CaseBody(Body):
    customer_number: CustomerNumber | None = None
    bg_number: BgNumber | None = None
    case_id: CaseId | None = None


class PersonStammdaten(Body):
    """person.stammdaten.0100: person master data, create or update (agency <-> municipal)."""

    customer_number: CustomerNumber
    bg_number: BgNumber | None = None
    person: Person


class ZuweisungAnmeldung(CaseBody):
    """zuweisung.anmeldung.1020: assignment of a participant to a measure (Jobcenter -> provider)."""

    measure_number: Code = Field(description="Maßnahmenummer")
    branch: Annotated[str, Field(pattern=r"^[0-9]{2}$")] = Field(
        description="Verfahrenszweig (measure branch)", json_schema_extra={"codelist": "verfahrenszweig"}
    )
    participant: Person
    period_start: dt.date = Field(description="first day of the assignment")
    period_end: dt.date = Field(description="last day of the assignment")
    weekly_hours: Annotated[Decimal, Field(ge=0, le=60, decimal_places=1), AsNumber] = Field(description="hours per week")
    schedule: Text | None = Field(default=None, description="Zeitplan, free text")
    expense_allowance: Annotated[Decimal, Field(ge=0, decimal_places=2), AsNumber] | None = Field(
        default=None, description="Mehraufwandsentschädigung per hour in EUR (AGH)"
    )
    travel_costs: Annotated[Decimal, Field(ge=0, decimal_places=2), AsNumber] | None = Field(
        default=None, description="travel costs per month in EUR"
    )
    goal: LongText | None = Field(default=None, description="goal: the excerpt of the Kooperationsplan only")
    case_worker: CaseWorker
    answer_by: dt.date | None = Field(default=None, description="date by which the provider answers")


class AttendanceDay(Model):
    date: dt.date
    code: Code = Field(description="attendance code", json_schema_extra={"codelist": "anwesenheit"})


class Absence(Model):
    date: dt.date
    reason: Code = Field(description="absence reason", json_schema_extra={"codelist": "fehlzeitgrund"})


class WeekAbsence(Model):
    week: Annotated[str, Field(pattern=r"^[0-9]{4}-W(0[1-9]|[1-4][0-9]|5[0-3])$")] = Field(description="calendar week, ISO 8601 (2026-W49)")
    hours: Annotated[Decimal, Field(ge=0, le=60, decimal_places=1), AsNumber] = Field(description="hours absent in that week")


class TeilnahmeAnwesenheit(CaseBody):
    """teilnahme.anwesenheit.2030: monthly attendance (§ 61 Abs. 2 SGB II), one code per day."""

    measure_number: Code
    month: Annotated[str, Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")] = Field(description="reporting month YYYY-MM")
    days: list[AttendanceDay] = Field(min_length=1, description="one entry per day with an attendance event")
    absences: list[Absence] = Field(default_factory=list, description="full-day absences with reason")
    week_absences: list[WeekAbsence] | None = Field(
        default=None, description="WochenFehlzeit: hours absent per week, for measures counted by the hour (since 1.1)"
    )


class TeilnahmeMitwirkung(CaseBody):
    """teilnahme.mitwirkung.2040: cooperation feedback to the case manager. Facts, not judgements."""

    measure_number: Code
    event: Code = Field(description="event code", json_schema_extra={"codelist": "mitwirkungsereignis"})
    event_date: dt.date
    facts: LongText = Field(description="the facts, stated without judgement")
    decision_requested_by: dt.date | None = Field(default=None, description="date by which the provider needs the decision")
    contact_attempts: list[dt.date] | None = Field(
        default=None, description="days on which the provider tried to reach the participant (since 1.1)"
    )


class Finding(Model):
    message: LongText
    location: Annotated[str, Field(max_length=255)] | None = None


class Quittung(Body):
    """administration.quittung.0020: receipt. Never answered itself."""

    received_at: dt.datetime = Field(description="when the hub accepted the referenced message")
    hub_id: Annotated[str, Field(max_length=64)] = Field(description="the hub's id of the referenced message")


class Rueckweisung(Body):
    """administration.rueckweisung.0010: rejection with every finding and its location."""

    reason: Code = Field(description="reason code", json_schema_extra={"codelist": "rueckweisungsgrund"})
    detail: LongText
    findings: list[Finding] = Field(default_factory=list)


BODY_TYPES: dict[str, type[Body]] = {
    "person.stammdaten.0100": PersonStammdaten,
    "zuweisung.anmeldung.1020": ZuweisungAnmeldung,
    "teilnahme.anwesenheit.2030": TeilnahmeAnwesenheit,
    "teilnahme.mitwirkung.2040": TeilnahmeMitwirkung,
    "administration.quittung.0020": Quittung,
    "administration.rueckweisung.0010": Rueckweisung,
}


class Message(Model):
    """A message in canonical form: header plus the typed body of its message type."""

    header: Header
    body: SerializeAsAny[Body]

    @classmethod
    def build(cls, header: Header | dict, body: dict) -> Message:
        header = header if isinstance(header, Header) else Header.model_validate(header)
        body_type = BODY_TYPES.get(header.message_type)
        if body_type is None:
            raise KeyError(header.message_type)
        return cls(header=header, body=body_type.model_validate(body))

    def body_dict(self) -> dict:
        return self.body.model_dump(mode="json", exclude_none=True)
