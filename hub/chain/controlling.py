"""Controlling figures of the case chain: per provider and measure, per sender, and deadlines per partner.

What quality management across the chain asks (docs/controlling.md): do providers report on time,
how many of their messages are refused or sent twice, how many participants start, drop out, or
leave for a job, what the cooperation loop produced, and what a participant costs. Every figure is
an aggregate over the chain's own rows (links, their record, deadlines) and the message store,
counted in the database -- one statement per figure group, grouped there, never a row per
participant fetched -- so the figures stay fast on a large store (docs/performance.md).

What counts as what is data (contracts/chain/controlling.yaml): which destinations are an
integration, which outcomes a drop-out, which record kinds a cooperation feedback, a decision, an
invoice line.

Scope: `owner` is the steering agency whose cases count (a case manager sees only its own agency's
cases); None is the operator's view of every case. Test chains and test messages count only with
`test=True`, never together with production.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.chain.lifecycle import Lifecycle
from hub.schemas.codelists import load_codelists
from hub.yaml_lines import ContractError, line, load
from hub.store.tables import cases, chain_deadlines, chain_events, chain_links, deliveries, message_events, messages

CENT = Decimal("0.01")


# -- what counts as what ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Definition:
    """contracts/chain/controlling.yaml, checked."""

    integration_destinations: frozenset[str]
    dropout_outcomes: frozenset[str]
    cooperation_record: str
    decision_record: str
    invoice_record: str
    invoice_amount: str

    @classmethod
    def load(cls, contracts_dir: Path) -> Definition:
        path = contracts_dir / "chain" / "controlling.yaml"
        data = load(path)
        if not isinstance(data, dict):
            raise ContractError(path, 0, "needs 'integration', 'dropout', 'records' and 'invoice_amount'")
        lists = load_codelists(contracts_dir)
        lifecycle = Lifecycle.load(contracts_dir / "chain" / "lifecycle.yaml")
        destinations = _codes(path, data, "integration", "destinations", {c for c in lists["verbleib"].codes})
        outcomes = _codes(path, data, "dropout", "outcomes", {c for name in ("austrittsart", "aenderungsart") for c in lists[name].codes})
        kinds = {t.record for t in lifecycle.transitions} | {p.record for p in lifecycle.per_line.values()}
        records = data.get("records")
        if not isinstance(records, dict) or set(records) != {"cooperation", "decision", "invoice"}:
            raise ContractError(path, line(data, "records"), "'records' names the record kinds of: cooperation, decision, invoice")
        for role, kind in records.items():
            if kind not in kinds:
                raise ContractError(path, line(records, role), f"records.{role}: {kind!r} is no record kind of lifecycle.yaml ({', '.join(sorted(kinds))})")
        invoice = next((p for p in lifecycle.per_line.values() if p.record == records["invoice"]), None)
        amount = data.get("invoice_amount")
        if invoice is None or amount not in invoice.keep_line:
            raise ContractError(path, line(data, "invoice_amount"), f"invoice_amount {amount!r} is not a field lifecycle.yaml keeps of an invoice line")
        return cls(destinations, outcomes, records["cooperation"], records["decision"], records["invoice"], str(amount))


def _codes(path: Path, data: Any, section: str, key: str, known: set[str]) -> frozenset[str]:
    spec = data.get(section)
    values = spec.get(key) if isinstance(spec, dict) else None
    if not isinstance(values, list) or not values:
        raise ContractError(path, line(data, section), f"'{section}' needs '{key}' (a list of codes)")
    for i, code in enumerate(values):
        if code not in known:
            raise ContractError(path, line(values, i) or line(spec, key), f"{section}.{key}: {code!r} is not in the code list")
    return frozenset(values)


@lru_cache(maxsize=8)
def definition(contracts_dir: Path) -> Definition:
    """The checked definition of a contracts folder, loaded once per process."""
    return Definition.load(contracts_dir)


@dataclass(frozen=True)
class Period:
    """Half-open [start, end) in days; either side open. Links count by the day they opened,
    deadlines by their due day, record entries and messages by the day they arrived."""

    start: dt.date | None = None
    end: dt.date | None = None

    def where(self, column: Any) -> list[Any]:
        timestamps = isinstance(column.type, sa.DateTime)
        bound = (lambda d: dt.datetime.combine(d, dt.time(), tzinfo=dt.timezone.utc)) if timestamps else (lambda d: d)
        return ([column >= bound(self.start)] if self.start else []) + ([column < bound(self.end)] if self.end else [])


ALWAYS = Period()


# -- the rows ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeasureFigures:
    """One provider's measure: participation, reporting, the cooperation loop and cost."""

    provider: str
    measure_number: str
    assignments: int  # links opened (referrals and assignments)
    starts: int  # links whose participant started
    non_starts: int  # started: false (nicht angetreten)
    declined: int  # the provider declined (Absage)
    exits: int  # started links that ended
    dropouts: int  # ends with a drop-out outcome, except those to a job or training (an integration)
    integrations: int  # exits to a job or training
    reports_on_time: int  # deadlines the provider met by their day
    reports_late: int  # met after the day, or missed and sent later
    reports_missed: int  # missed and never sent
    reports_open: int  # not yet due or not yet swept
    cooperation_events: int  # cooperation feedbacks (2040) recorded
    decisions: int  # decisions about the participation recorded
    duplicates: int  # reports caught as duplicates of a report on this measure
    invoiced_amount: Decimal  # EUR, all invoice lines
    invoiced_participants: int  # distinct cases with an invoice line

    @property
    def integration_rate(self) -> float | None:
        return _rate(self.integrations, self.exits)

    @property
    def dropout_rate(self) -> float | None:
        return _rate(self.dropouts, self.starts)

    @property
    def on_time_rate(self) -> float | None:
        return _rate(self.reports_on_time, self.reports_on_time + self.reports_late + self.reports_missed)

    @property
    def cost_per_participant(self) -> Decimal | None:
        if not self.invoiced_participants:
            return None
        return (self.invoiced_amount / self.invoiced_participants).quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class SenderFigures:
    """One sender's messages: how many the hub received, refused (rueckweisung) and caught as duplicates.

    In an agency's scope (`owner`) a sender's messages are those delivered to the agency, and the
    duplicates of reports on its cases; a refused message changed nothing and reached no one, so the
    hub knows no agency for it: `rejected` is the operator's figure (None in an agency's scope)."""

    partner: str
    received: int
    rejected: int | None
    duplicates: int

    @property
    def rejection_rate(self) -> float | None:
        return None if self.rejected is None else _rate(self.rejected, self.received)

    @property
    def duplicate_rate(self) -> float | None:
        return _rate(self.duplicates, self.received)


@dataclass(frozen=True)
class PartnerDeadlines:
    """What one partner (provider or steering agency) owed of one kind, and how it kept it."""

    partner: str
    kind: str
    due: int
    on_time: int
    late: int  # met after the day (before the scheduler's sweep), or missed and sent later
    missed: int  # missed and never sent
    open: int
    overdue: int  # open and past its day (the scheduler has not yet swept it)

    @property
    def breaches(self) -> int:
        """SLA breaches: every deadline not met by its day."""
        return self.late + self.missed

    @property
    def on_time_rate(self) -> float | None:
        return _rate(self.on_time, self.on_time + self.late + self.missed)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# -- the queries --------------------------------------------------------------------------------------
def _count(condition: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _scoped(query: Any, owner: str | None, case_column: Any) -> Any:
    return query if owner is None else query.join(cases, cases.c.id == case_column).where(cases.c.owner == owner)


_KEY = (chain_links.c.partner_id, chain_links.c.measure_number)
dl = chain_deadlines.c
_ON_TIME = sa.and_(dl.status == "met", dl.met_on <= dl.due_on)
_LATE = sa.or_(sa.and_(dl.status == "met", dl.met_on > dl.due_on), sa.and_(dl.status == "missed", dl.met_on.is_not(None)))
_MISSED = sa.and_(dl.status == "missed", dl.met_on.is_(None))


def measure_figures(
    conn: Connection, definition: Definition, owner: str | None = None, *, period: Period = ALWAYS, test: bool = False,
) -> list[MeasureFigures]:
    """The figures of every provider's measure in scope, sorted by provider and measure."""
    link = chain_links.c
    ended = sa.and_(link.status == "ended", link.start_date.is_not(None))
    # an Abbruch to take up a job (eM@w reports it so) is an integration, not a drop-out
    integrated = sa.func.coalesce(link.destination.in_(sorted(definition.integration_destinations)), False)
    links_q = _scoped(sa.select(*_KEY, sa.func.count().label("assignments"), _count(link.start_date.is_not(None)).label("starts"),
                                _count(link.status == "not_started").label("non_starts"), _count(link.status == "declined").label("declined"),
                                _count(ended).label("exits"),
                                _count(sa.and_(link.status == "ended", link.outcome.in_(sorted(definition.dropout_outcomes)),
                                               sa.not_(integrated))).label("dropouts"),
                                _count(sa.and_(ended, integrated)).label("integrations")),
                      owner, link.case_id).where(link.test == test, *period.where(link.opened_at)).group_by(*_KEY)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in conn.execute(links_q):
        rows[(r.partner_id, r.measure_number)] = dict(r._mapping)

    # each figure is first counted per link (an index-only scan of the table's controlling index),
    # then per measure: the join to the links runs once per link, not once per deadline or entry
    owed = (sa.select(dl.link_id, dl.partner_id, _count(_ON_TIME).label("on_time"), _count(_LATE).label("late"),
                      _count(_MISSED).label("missed"), _count(dl.status == "open").label("open"))
            .where(dl.link_id.is_not(None), dl.status != "cancelled", *period.where(dl.due_on)).group_by(dl.link_id, dl.partner_id).subquery())
    _merge(rows, conn.execute(_per_measure(owner, test, owed, chain_links.c.partner_id == owed.c.partner_id,
                                           reports_on_time=sa.func.sum(owed.c.on_time), reports_late=sa.func.sum(owed.c.late),
                                           reports_missed=sa.func.sum(owed.c.missed), reports_open=sa.func.sum(owed.c.open))))

    e = chain_events.c
    for kind, name in ((definition.cooperation_record, "cooperation_events"), (definition.decision_record, "decisions")):
        counted = (sa.select(e.link_id, sa.func.count().label("n")).where(e.kind == kind, e.link_id.is_not(None), *period.where(e.at))
                   .group_by(e.link_id).subquery())
        _merge(rows, conn.execute(_per_measure(owner, test, counted, **{name: sa.func.sum(counted.c.n)})))

    amount = sa.cast(e.detail[definition.invoice_amount].as_string(), sa.Numeric(14, 2))
    invoiced = (sa.select(e.link_id, sa.func.sum(amount).label("amount")).where(e.kind == definition.invoice_record, e.link_id.is_not(None), *period.where(e.at))
                .group_by(e.link_id).subquery())
    _merge(rows, conn.execute(_per_measure(owner, test, invoiced, invoiced_amount=sa.func.sum(invoiced.c.amount),
                                           invoiced_participants=sa.func.count(sa.distinct(chain_links.c.case_id)))))
    _merge(rows, conn.execute(_duplicates(owner, period, test, by_measure=True)))

    fields = [f.name for f in dataclasses.fields(MeasureFigures)]
    out = []
    for (provider, measure), values in sorted(rows.items()):
        values = {k: values.get(k) or 0 for k in fields[2:]}
        values["invoiced_amount"] = Decimal(str(values["invoiced_amount"])).quantize(CENT, ROUND_HALF_UP)
        out.append(MeasureFigures(provider=provider, measure_number=measure, **values))
    return out


def _per_measure(owner: str | None, test: bool, per_link: Any, *on: Any, **figures: Any) -> Any:
    """`figures` (aggregates over `per_link`, a subquery with one row per link) per provider and measure."""
    query = sa.select(*_KEY, *(value.label(name) for name, value in figures.items())).select_from(
        per_link.join(chain_links, sa.and_(chain_links.c.id == per_link.c.link_id, *on)))
    return _scoped(query, owner, chain_links.c.case_id).where(chain_links.c.test == test).group_by(*_KEY)


def _merge(rows: dict[tuple[str, str], dict[str, Any]], result: Iterable[Any]) -> None:
    for r in result:
        values = dict(r._mapping)
        rows.setdefault((values.pop("partner_id"), values.pop("measure_number")), {}).update(values)


def _duplicates(owner: str | None, period: Period, test: bool, *, by_measure: bool) -> Any:
    """Duplicates caught, grouped by the link (provider, measure) of the first report they repeated
    (the dedup history entry names it: detail `of`), or by sender."""
    m, ev, e = messages.c, message_events.c, chain_events.c
    key = _KEY if by_measure else (m.sender.label("partner"),)
    query = (
        sa.select(*key, sa.func.count(sa.distinct(m.id)).label("duplicates"))
        .select_from(messages.join(message_events, sa.and_(ev.message_id == m.id, ev.stage == "dedup", ev.event == "duplicate"))
                     .join(chain_events, sa.and_(e.message_id == ev.detail["of"].as_string(), e.link_id.is_not(None)))
                     .join(chain_links, chain_links.c.id == e.link_id))
        .where(m.status == "duplicate", m.test == test, *period.where(m.created_at))
        .group_by(*key)
    )
    return _scoped(query, owner, e.case_id)


def sender_figures(
    conn: Connection, owner: str | None = None, *, senders: Sequence[str] | None = None, period: Period = ALWAYS, test: bool = False,
) -> list[SenderFigures]:
    """Messages received, refused and caught as duplicates per sender (`senders`: only these, e.g.
    the providers), sorted by sender."""
    m = messages.c
    found: dict[str, dict[str, Any]] = {}
    if owner is None:
        query = sa.select(m.sender.label("partner"), sa.func.count().label("received"), _count(m.status == "rejected").label("rejected"),
                          _count(m.status == "duplicate").label("duplicates")).where(m.test == test, *period.where(m.created_at))
        if senders is not None:
            query = query.where(m.sender.in_(list(senders)))
        for r in conn.execute(query.group_by(m.sender)):
            found[r.partner] = dict(r._mapping)
    else:
        # what the agency received from each sender: the messages of the period delivered to it (a
        # refused message and a duplicate were delivered to no one), one probe of the deliveries' key each
        delivered = sa.exists().where(deliveries.c.message_id == m.id, deliveries.c.recipient == owner)
        received = (sa.select(m.sender.label("partner"), sa.func.count().label("received"))
                    .where(delivered, m.sender != owner, m.test == test, *period.where(m.created_at)).group_by(m.sender))
        for r in conn.execute(received):
            found[r.partner] = {"partner": r.partner, "received": r.received, "rejected": None, "duplicates": 0}
        for r in conn.execute(_duplicates(owner, period, test, by_measure=False)):
            found.setdefault(r.partner, {"partner": r.partner, "received": 0, "rejected": None})["duplicates"] = r.duplicates
            found[r.partner]["received"] += r.duplicates  # a duplicate is recorded on no link: received all the same
    return [SenderFigures(partner=p, received=v["received"], rejected=v.get("rejected"), duplicates=v.get("duplicates", 0))
            for p, v in sorted(found.items()) if senders is None or p in senders]


def partner_deadlines(
    conn: Connection, owner: str | None = None, *, today: dt.date, period: Period = ALWAYS, test: bool = False,
) -> list[PartnerDeadlines]:
    """Deadlines and SLA breaches per partner that owed them (a provider its reports, the steering
    agency its decisions) and kind, sorted by partner and kind. (Every deadline belongs to a link:
    the rules expect reports and decisions of a link.)"""
    per_link = (sa.select(dl.link_id, dl.partner_id, dl.kind, sa.func.count().label("due"), _count(_ON_TIME).label("on_time"),
                          _count(_LATE).label("late"), _count(_MISSED).label("missed"), _count(dl.status == "open").label("open"),
                          _count(sa.and_(dl.status == "open", dl.due_on < today)).label("overdue"))
                .where(dl.link_id.is_not(None), dl.status != "cancelled", *period.where(dl.due_on)).group_by(dl.link_id, dl.partner_id, dl.kind).subquery())
    p = per_link.c
    query = _scoped(
        sa.select(p.partner_id, p.kind, *(sa.func.sum(p[name]).label(name) for name in ("due", "on_time", "late", "missed", "open", "overdue")))
        .select_from(per_link.join(chain_links, chain_links.c.id == p.link_id)),
        owner, chain_links.c.case_id,
    ).where(chain_links.c.test == test).group_by(p.partner_id, p.kind)
    return [PartnerDeadlines(partner=r.partner_id, kind=r.kind, due=r.due, on_time=r.on_time, late=r.late, missed=r.missed, open=r.open, overdue=r.overdue)
            for r in sorted(conn.execute(query), key=lambda r: (r.partner_id, r.kind))]


# -- export ---------------------------------------------------------------------------------------------
def to_csv(rows: Sequence[Any]) -> str:
    """Rows (one of the figure types) as CSV for a spreadsheet in a German office: `;` between
    fields (the comma is the decimal sign there), decimal commas, a header of the field names, the
    derived rates and cost included, and a UTF-8 byte order mark so Excel reads the umlauts.
    Write the text as UTF-8 as it is (the BOM is its first character)."""
    out = io.StringIO()
    out.write("\ufeff")
    if not rows:
        return out.getvalue()
    kind = type(rows[0])
    names = [f.name for f in dataclasses.fields(kind)] + [n for n, v in vars(kind).items() if isinstance(v, property)]
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([_cell(getattr(row, n)) for n in names])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".replace(".", ",")
    if isinstance(value, Decimal):
        return f"{value:.2f}".replace(".", ",")
    return str(value)
