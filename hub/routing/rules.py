"""Routing rules as data (contracts/routes.yaml): content-based router plus recipient list.

A rule matches on message type (glob) and the sender's role and names *how* to find recipients
(`reader`, `case_owner`, `case_members`), not who they are: the case chain answers that at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

TARGETS = ("reader", "case_owner", "case_members")


@dataclass(frozen=True)
class Route:
    name: str
    message_type: str
    sender_role: str | None
    to: str
    purpose: str
    reader_role: str | None = None
    member_role: str | None = None
    opens_case: bool = False
    requires_case_membership: bool = False
    #: case_members only: just the members that run the measure the message names (measure_number)
    same_measure: bool = False

    def matches(self, message_type: str, sender_role: str) -> bool:
        return fnmatchcase(message_type, self.message_type) and self.sender_role in (None, sender_role)


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...]

    @classmethod
    def load(cls, path: Path) -> RouteTable:
        data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        routes = []
        for raw in data.get("routes", []):
            when = raw.get("when", {})
            route = Route(
                name=raw["name"],
                message_type=when.get("message_type", "*"),
                sender_role=when.get("sender_role"),
                to=raw["to"],
                purpose=raw["purpose"],
                reader_role=raw.get("reader_role"),
                member_role=raw.get("with"),
                opens_case=bool(raw.get("opens_case", False)),
                requires_case_membership=bool(raw.get("requires_case_membership", False)),
                same_measure=bool(raw.get("same_measure", False)),
            )
            if route.to not in TARGETS:
                raise ValueError(f"{path}: route {route.name!r}: 'to' must be one of {TARGETS}")
            routes.append(route)
        return cls(tuple(routes))

    def matching(self, message_type: str, sender_role: str) -> list[Route]:
        return [r for r in self.routes if r.matches(message_type, sender_role)]
