"""The canonical data model: the one shape every partner format is translated into and out of.

Adapters never translate partner to partner; they translate partner <-> canonical, so N formats need
N adapters, not N x N translators (EIP: Canonical Data Model). Field descriptions are documentation:
the contract generator copies them into the XSD annotations and JSON Schema descriptions.

Identifiers: `customer_number` (Kundennummer) and `bg_number` (BG-Nummer) are agency identifiers and
never reach a provider; `case_id` is the recipient's own reference for the case (a hub-issued
pseudonym for providers), filled in per recipient by the pipeline.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, SerializeAsAny, model_validator
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
    base_version: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="basisVersion: the revision of the person's master data the sender last saw (since 2.1); "
        "in a delivery, the revision the recipient names with its next change",
    )


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


Branch = Annotated[str, Field(pattern=r"^[0-9]{2}$")]
Month = Annotated[str, Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
Euro = Annotated[Decimal, Field(ge=0, decimal_places=2), AsNumber]
#: an attachment travels inline, base64; 2 MiB of document at most (the message limit is 5 MiB)
ATTACHMENT_MAX_BYTES = 2 * 1024 * 1024
Base64 = Annotated[
    str, Field(min_length=4, max_length=4 * ((ATTACHMENT_MAX_BYTES + 2) // 3), pattern=r"^[A-Za-z0-9+/]+={0,2}$")
]


class ZuweisungKontakt(CaseBody):
    """zuweisung.kontakt.1010: contact request / referral of a client to a provider (Jobcenter -> provider).

    The provider contacts the participant and answers with zuweisung.rueckmeldung.1030 by `answer_by`.
    The provider receives the hub's pseudonymous case id, never the Kundennummer or BG-Nummer."""

    measure_number: Code = Field(description="Maßnahmenummer")
    branch: Branch = Field(description="Verfahrenszweig (measure branch)", json_schema_extra={"codelist": "verfahrenszweig"})
    participant: Person = Field(description="the participant: name, date of birth, address, contact")
    case_worker: CaseWorker = Field(description="the responsible case manager and how to reach them")
    answer_by: dt.date = Field(description="Antwortfrist: date by which the provider answers with a Rückmeldung (1030)")


class ZuweisungRueckmeldung(CaseBody):
    """zuweisung.rueckmeldung.1030: the provider accepts (Zusage) or declines (Absage) a contact request
    or an assignment (provider -> Jobcenter); the header's referenzUUID names the 1010 or 1020 it answers.

    A decline needs a reason from the code list absagegrund (a provider declines only if the person never
    started); an acceptance has none and may name the earliest possible start."""

    measure_number: Code = Field(description="Maßnahmenummer")
    answer: Code = Field(description="Zusage or Absage", json_schema_extra={"codelist": "rueckmeldung"})
    decline_reason: Code | None = Field(
        default=None, description="reason of a decline (required with an Absage)", json_schema_extra={"codelist": "absagegrund"}
    )
    earliest_start: dt.date | None = Field(default=None, description="earliest possible start date (with a Zusage)")
    remark: LongText | None = Field(default=None, description="Bemerkung: facts only, no judgements")

    @model_validator(mode="after")
    def _reason_with_decline(self) -> ZuweisungRueckmeldung:
        if self.answer == "absage" and not self.decline_reason:
            raise ValueError("an Absage needs a decline_reason (code list absagegrund)")
        if self.answer != "absage" and self.decline_reason:
            raise ValueError("a decline_reason is only given with an Absage")
        return self


class TeilnahmeEintritt(CaseBody):
    """teilnahme.eintritt.2010: the participant started the measure, or did not (provider -> Jobcenter).

    started=true carries the start date; started=false carries the reason of the non-start."""

    measure_number: Code = Field(description="Maßnahmenummer")
    started: bool = Field(description="true: the participant started; false: the participant did not start")
    start_date: dt.date | None = Field(default=None, description="Eintrittsdatum (required when started)")
    non_start_reason: Code | None = Field(
        default=None, description="reason of the non-start (required when not started)", json_schema_extra={"codelist": "nichtantrittsgrund"}
    )
    remark: LongText | None = Field(default=None, description="Bemerkung: facts only, no judgements")

    @model_validator(mode="after")
    def _date_or_reason(self) -> TeilnahmeEintritt:
        if self.started and (self.start_date is None or self.non_start_reason):
            raise ValueError("a start needs a start_date and no non_start_reason")
        if not self.started and (self.non_start_reason is None or self.start_date is not None):
            raise ValueError("a non-start needs a non_start_reason and no start_date")
        return self


class TeilnahmeAenderung(CaseBody):
    """teilnahme.aenderung.2020: a change of the participation, either way: extension, changed weekly
    hours, cancellation, or the case manager's decision after a cooperation feedback (2040): continue or
    end; the header's referenzUUID (or feedback_uuid) names the 2040 it decides.

    This type has no field for the benefit consequence (Leistungsminderung, §§ 31, 31a, 32 SGB II) on
    purpose: the sanction outcome stays inside the agency and never reaches a provider, so no partner
    can even write it here. Only the decision about the participation travels."""

    measure_number: Code = Field(description="Maßnahmenummer")
    change_kind: Code = Field(description="kind of change", json_schema_extra={"codelist": "aenderungsart"})
    effective_date: dt.date = Field(description="the day from which the change applies")
    new_period_end: dt.date | None = Field(default=None, description="new last day of the participation (extension)")
    new_weekly_hours: Annotated[Decimal, Field(ge=0, le=60, decimal_places=1), AsNumber] | None = Field(
        default=None, description="new hours per week (changed hours)"
    )
    feedback_uuid: UUID | None = Field(
        default=None, description="nachrichtenUUID of the cooperation feedback (2040) decided here; the header's referenzUUID is enough"
    )
    remark: LongText | None = Field(default=None, description="Bemerkung: facts only, no judgements")

    @model_validator(mode="after")
    def _what_changes(self) -> TeilnahmeAenderung:
        if self.change_kind == "verlaengerung" and self.new_period_end is None:
            raise ValueError("an extension (verlaengerung) needs new_period_end")
        if self.change_kind == "stundenaenderung" and self.new_weekly_hours is None:
            raise ValueError("a change of hours (stundenaenderung) needs new_weekly_hours")
        if self.feedback_uuid is not None and not self.change_kind.startswith("entscheidung_"):
            raise ValueError("feedback_uuid belongs to a decision after a cooperation feedback (entscheidung_*)")
        return self


class TeilnahmeAustritt(CaseBody):
    """teilnahme.austritt.2050: exit from the measure (provider -> Jobcenter): a regular end or a
    drop-out (Abbruch) with its reason, and the destination (Verbleib) as far as the provider knows it."""

    measure_number: Code = Field(description="Maßnahmenummer")
    exit_date: dt.date = Field(description="Austrittsdatum: last day of the participation")
    exit_kind: Code = Field(description="regular end or drop-out", json_schema_extra={"codelist": "austrittsart"})
    dropout_reason: Code | None = Field(
        default=None, description="reason of a drop-out (required with an Abbruch)", json_schema_extra={"codelist": "abbruchgrund"}
    )
    destination: Code = Field(description="Verbleib after the exit", json_schema_extra={"codelist": "verbleib"})
    remark: LongText | None = Field(default=None, description="Bemerkung: facts only, no judgements")

    @model_validator(mode="after")
    def _reason_with_dropout(self) -> TeilnahmeAustritt:
        if self.exit_kind == "abbruch" and not self.dropout_reason:
            raise ValueError("a drop-out (abbruch) needs a dropout_reason (code list abbruchgrund)")
        if self.exit_kind != "abbruch" and self.dropout_reason:
            raise ValueError("a dropout_reason is only given with a drop-out (abbruch)")
        return self


class AssessmentItem(Model):
    """One criterion of a structured assessment: a rating on the scale, a finding in words, or both.
    Both describe what was observed during the measure, not the person."""

    criterion: Code = Field(description="assessment criterion", json_schema_extra={"codelist": "beurteilungskriterium"})
    rating: Code | None = Field(default=None, description="rating 1-5 of the observed criterion", json_schema_extra={"codelist": "bewertungsstufe"})
    finding: LongText | None = Field(default=None, description="Feststellung: the observed facts")

    @model_validator(mode="after")
    def _rated_or_described(self) -> AssessmentItem:
        if self.rating is None and self.finding is None:
            raise ValueError("an assessment item needs a rating or a finding")
        return self


class Attachment(Model):
    """A document attached to a message: a PDF, base64-encoded, at most 2 MiB."""

    media_type: Literal["application/pdf"] = Field(description="Medientyp (only application/pdf)")
    file_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9ÄÖÜäöüß_. ()-]{1,200}\.pdf$")] = Field(description="Dateiname, without a path")
    content: Base64 = Field(description="the document, base64 (RFC 4648), at most 2 MiB decoded")

    @model_validator(mode="after")
    def _a_pdf(self) -> Attachment:
        try:
            data = base64.b64decode(self.content, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the attachment content is not valid base64") from None
        if len(data) > ATTACHMENT_MAX_BYTES:
            raise ValueError(f"the attachment exceeds {ATTACHMENT_MAX_BYTES} bytes")
        if not data.startswith(b"%PDF-"):
            raise ValueError("the attachment is not a PDF document")
        return self


class BerichtBeurteilung(CaseBody):
    """bericht.beurteilung.3010: assessment report (provider -> Jobcenter): interim, result or final report
    on a period, as a structured assessment. Reports state facts, not judgements.

    A Beurteilung must have been shown to the participant before it is forwarded: the date it was shown
    (shown_to_participant_on) is required; a report without it is refused."""

    measure_number: Code = Field(description="Maßnahmenummer")
    report_kind: Code = Field(description="kind of report", json_schema_extra={"codelist": "berichtsart"})
    period_start: dt.date = Field(description="first day of the period the report covers")
    period_end: dt.date = Field(description="last day of the period the report covers")
    assessment: list[AssessmentItem] = Field(min_length=1, description="structured assessment, one entry per criterion")
    shown_to_participant_on: dt.date = Field(description="date on which the report was shown to the participant (required before forwarding)")
    attachment: Attachment | None = Field(default=None, description="the signed report as PDF")

    @model_validator(mode="after")
    def _period(self) -> BerichtBeurteilung:
        if self.period_end < self.period_start:
            raise ValueError("period_end lies before period_start")
        return self


class InvoiceLine(Model):
    """One participant's line of a monthly invoice. The case is named in the reference of whoever reads
    the line: the provider's pseudonymous case id in provider JSON, the Kundennummer in agency XML; the
    hub translates one into the other and refuses a line that names a case it cannot place."""

    case_id: CaseId | None = None
    customer_number: CustomerNumber | None = None
    participant_days: Annotated[int, Field(ge=0, le=31)] = Field(description="recognised participant days in the month")
    amount: Euro = Field(description="amount in EUR for this participant")

    @model_validator(mode="after")
    def _names_a_case(self) -> InvoiceLine:
        if not (self.case_id or self.customer_number):
            raise ValueError("an invoice line needs its case reference")
        return self


class AbrechnungMonat(Body):
    """abrechnung.monat.4010: monthly invoice of a measure (provider -> Jobcenter), one line per participant.

    It concerns several cases: each line names its own. The provider addresses the Jobcenter in the
    header (leser); the Jobcenter reads every line under its own Kundennummer."""

    measure_number: Code = Field(description="Maßnahmenummer")
    month: Month = Field(description="invoiced month YYYY-MM")
    invoice_number: Code = Field(description="Rechnungsnummer of the provider")
    participant_days_total: Annotated[int, Field(ge=0)] = Field(description="recognised participant days, all lines together")
    lines: list[InvoiceLine] = Field(min_length=1, description="one line per participant")
    total_amount: Euro = Field(description="total amount in EUR, all lines together")
    attachment: Attachment | None = Field(default=None, description="the invoice as PDF")

    @model_validator(mode="after")
    def _sums(self) -> AbrechnungMonat:
        if sum(line.participant_days for line in self.lines) != self.participant_days_total:
            raise ValueError("participant_days_total is not the sum of the lines' participant_days")
        if sum(line.amount for line in self.lines) != self.total_amount:
            raise ValueError("total_amount is not the sum of the lines' amounts")
        return self


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


class SteuerungAufgabe(CaseBody):
    """steuerung.aufgabe.5010: a task for the case owner, opened by the hub's steering rules (hub ->
    Jobcenter / zkT): a decision due after a cooperation feedback, a late report to chase, the next link
    of the chain to decide. For a Fachverfahren that cannot call the hub's task API; the decision comes
    back as an ordinary message (a teilnahme.aenderung.2020) or through `POST /v1/tasks/{id}/complete`.

    It names the case by the owner's Kundennummer and carries no personal data beyond it."""

    task_id: Annotated[str, Field(pattern=r"^[0-9A-Z]{26}$")] = Field(description="the hub's id of the task")
    task_kind: Code = Field(description="kind of task, as the steering rules name it (e.g. cooperation_decision, overdue_report, next_link)")
    title: Text = Field(description="what is to be done, in words")
    due_date: dt.date = Field(description="Fälligkeit: the day by which the task is to be done")
    measure_number: Code | None = Field(default=None, description="the measure of the link the task concerns")
    proposed_measure: Code | None = Field(default=None, description="the next link the rules propose (contracts/chain/measures.yaml)")
    proposal: Text | None = Field(default=None, description="the proposed measure in words")
    decisions: list[Code] = Field(min_length=1, description="the decisions the task can be completed with")
    rule: Code = Field(description="the steering rule that opened the task")
    rule_version: Code = Field(description="the version of the steering rules that opened the task")


BODY_TYPES: dict[str, type[Body]] = {
    "person.stammdaten.0100": PersonStammdaten,
    "zuweisung.anmeldung.1020": ZuweisungAnmeldung,
    "teilnahme.anwesenheit.2030": TeilnahmeAnwesenheit,
    "teilnahme.mitwirkung.2040": TeilnahmeMitwirkung,
    "zuweisung.kontakt.1010": ZuweisungKontakt,
    "zuweisung.rueckmeldung.1030": ZuweisungRueckmeldung,
    "teilnahme.eintritt.2010": TeilnahmeEintritt,
    "teilnahme.aenderung.2020": TeilnahmeAenderung,
    "teilnahme.austritt.2050": TeilnahmeAustritt,
    "bericht.beurteilung.3010": BerichtBeurteilung,
    "abrechnung.monat.4010": AbrechnungMonat,
    "administration.quittung.0020": Quittung,
    "administration.rueckweisung.0010": Rueckweisung,
    "steuerung.aufgabe.5010": SteuerungAufgabe,
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
