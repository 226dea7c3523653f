"""Findings and refusals: what the hub tells a sender about input it will not take.

A refusal becomes an RFC 9457 problem+json answer on HTTP, a one-line error on the CLI and a
rueckweisung (administration.rueckweisung.0010) on asynchronous channels: one type serves all three so
every channel says the same thing about the same input.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One problem in a message, located by line/column (XML) or JSON pointer (JSON)."""

    message: str
    line: int | None = None
    column: int | None = None
    pointer: str | None = None

    @property
    def location(self) -> str:
        if self.pointer is not None:
            return self.pointer or "/"
        if self.line is not None:
            return f"line {self.line}" + (f", column {self.column}" if self.column is not None else "")
        return ""

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        data["location"] = self.location
        return data


def undecodable(exc: UnicodeDecodeError, encoding: str, data: bytes, offset: int = 0) -> Finding:
    """The finding for bytes `encoding` cannot read: one sentence naming the byte's offset in the
    message (`offset`: where the decoded part began, e.g. after a byte order mark) and its line.

    Python's own text ("'utf-8' codec can't decode byte 0xfc in position 8: ...") names the codec,
    not the partner's problem; its `start` counts from the decoded slice, not from the message."""
    at = offset + exc.start
    return Finding(f"not valid {encoding} at byte {at}: {exc.reason}", line=data.count(b"\n", 0, at) + 1)


#: findings a report lists; the rest are counted (a partner fixes the first ones and sends again)
MAX_FINDINGS = 100


class Findings(list):
    """A validation's findings as listed, and how many more there were (`unlisted`; a lower bound
    where `complete` is False: the check stopped at its time budget)."""

    unlisted: int = 0
    complete: bool = True

    @property
    def total(self) -> int:
        """Findings in all (those listed, not counting the summary line, and the rest)."""
        return len(self) - (1 if self.unlisted or not self.complete else 0) + self.unlisted

    def summary(self) -> str:
        """`N finding(s)`, with how many are listed where not all are."""
        if self.complete and not self.unlisted:
            return f"{len(self)} finding(s)"
        shown = len(self) - 1
        return f"{'at least ' if not self.complete else ''}{self.total:,} finding(s), the first {shown} listed"


#: the clock of a validation's budget: the CPU time of the validating thread, so that a busy machine
#: (other requests, other processes) neither cuts a check short nor lets a hostile one run longer
clock = time.thread_time


class Report:
    """The findings of one validation: the first `limit`, a count of the rest, within a time budget.

    A message can be built to fail everywhere (350,000 unexpected elements in 5 MB): listing every
    finding would cost minutes of CPU and megabytes of answer. The report keeps the first `limit`
    findings, counts the others, and stops where `seconds` have passed since it began; then the
    count is a lower bound, and the report says so. `seconds` are CPU seconds of the validating
    thread (`clock`); one-time work such as compiling a schema is not charged (`exempt`)."""

    def __init__(self, seconds: float | None, limit: int = MAX_FINDINGS) -> None:
        self.seconds = seconds
        self.deadline = clock() + seconds if seconds else None
        self.limit = limit
        self.listed: list[Finding] = []
        self.more = 0
        #: why the report stopped before every finding was seen (None: it did not)
        self.stopped: str | None = None

    @property
    def spent(self) -> bool:
        return self.deadline is not None and clock() > self.deadline

    def exempt(self, seconds: float) -> None:
        """Do not charge `seconds` of one-time work (a schema compiled on first use) to this message."""
        if self.deadline is not None:
            self.deadline += seconds

    def stop(self, why: str) -> None:
        self.stopped = why

    def add(self, finding: Finding) -> bool:
        """Take one finding; False once the budget is spent (stop looking)."""
        if len(self.listed) < self.limit:
            self.listed.append(finding)
        else:
            self.more += 1
        if self.spent:
            self.stop(f"checking took longer than the budget of {self.seconds:g} s")
            return False
        return True

    def collect(self, findings: Iterable[Finding]) -> Report:
        for finding in findings:
            if not self.add(finding):
                break
        return self

    def findings(self, order: Any = None) -> Findings:
        """The listed findings (sorted by `order` if given), then one finding that counts the rest."""
        out = Findings(sorted(self.listed, key=order) if order is not None else self.listed)
        out.unlisted, out.complete = self.more, self.stopped is None
        if self.stopped:
            more = f"; at least {self.more:,} more finding(s) not listed" if self.more else ""
            out.append(Finding(f"the report stops here: {self.stopped}{more}"))
        elif self.more:
            out.append(Finding(f"and {self.more:,} more finding(s) not listed (the first {self.limit} are)"))
        return out


# problem kinds: slug -> (HTTP status, title). The slug is the stable part partners can switch on.
PROBLEMS: dict[str, tuple[int, str]] = {
    "malformed": (400, "Malformed message"),
    "invalid-request": (400, "Invalid request"),
    "method-not-allowed": (405, "Method not allowed"),
    "forbidden-construct": (400, "Forbidden XML construct"),
    "bad-encoding": (400, "Wrong character encoding"),
    "missing-header": (400, "Message header incomplete"),
    "unauthenticated": (401, "Authentication required"),
    "forbidden": (403, "Not allowed"),
    "not-found": (404, "Not found"),
    "conflict": (409, "Conflict"),
    "too-large": (413, "Message too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "unknown-message-type": (422, "Unknown message type"),
    "unsupported-version": (422, "Unsupported contract version"),
    "schema-invalid": (422, "Message does not satisfy its contract"),
    "business-rule": (422, "Message violates a business rule"),
    "unavailable": (503, "Service temporarily unavailable"),
}


@dataclass
class Refusal(Exception):
    """Input the hub refuses. Carries the problem kind, one clear sentence and the findings."""

    kind: str
    detail: str
    findings: list[Finding] = field(default_factory=list)
    #: the message type the refused message names, where its header was read (ingress.check sets it;
    #: for metrics, never shown to the partner)
    message_type: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        super().__init__(self.detail)
        if self.kind not in PROBLEMS:
            raise ValueError(f"unknown problem kind {self.kind!r}")

    @property
    def status(self) -> int:
        return PROBLEMS[self.kind][0]

    @property
    def title(self) -> str:
        return PROBLEMS[self.kind][1]

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:casechain:problem:{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "findings": [f.as_dict() for f in self.findings],
        }
        if instance:
            body["instance"] = instance
        return body

    def one_line(self) -> str:
        first = ""
        if self.findings:
            where = self.findings[0].location
            first = f" ({where}: {self.findings[0].message})" if where else f" ({self.findings[0].message})"
        more = f" and {len(self.findings) - 1} more finding(s)" if len(self.findings) > 1 else ""
        return f"{self.detail}{first}{more}"
