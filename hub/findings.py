"""Findings and refusals: what the hub tells a sender about input it will not take.

A refusal becomes an RFC 9457 problem+json answer on HTTP, a one-line error on the CLI and a
rueckweisung (administration.rueckweisung.0010) on asynchronous channels: one type serves all three so
every channel says the same thing about the same input.
"""

from __future__ import annotations

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


# problem kinds: slug -> (HTTP status, title). The slug is the stable part partners can switch on.
PROBLEMS: dict[str, tuple[int, str]] = {
    "malformed": (400, "Malformed message"),
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
        first = f" ({self.findings[0].location}: {self.findings[0].message})" if self.findings else ""
        more = f" and {len(self.findings) - 1} more finding(s)" if len(self.findings) > 1 else ""
        return f"{self.detail}{first}{more}"
