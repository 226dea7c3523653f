"""Routing rules as data (contracts/routes.yaml): content-based router plus recipient list.

A rule matches on message type (glob) and the sender's role and names *how* to find recipients
(`reader`, `case_owner`, `case_members`), not who they are: the case chain answers that at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from collections.abc import Iterable
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

    @property
    def case_owner_roles(self) -> frozenset[str | None]:
        """Roles a case owner has: a case is opened by the sender of an `opens_case` route."""
        return frozenset(r.sender_role for r in self.routes if r.opens_case)

    def reader_roles(self, message_type: str, sender_role: str) -> frozenset[str | None]:
        """The roles of the partners a sender may name as reader of a message (None in it: any role).

        A reader is who the message is for, so it must be a partner the routes could deliver it to:
        the reader of a `reader` route, the case owner, or a case member of the route's role. Empty if
        no route matches (the pipeline refuses such a message anyway)."""
        roles: set[str | None] = set()
        for route in self.matching(message_type, sender_role):
            if route.to == "reader":
                roles.add(route.reader_role)
            elif route.to == "case_owner":
                roles |= self.case_owner_roles
            else:
                roles.add(route.member_role)
        return frozenset(roles)

    def defaults_for(self, role: str, message_types: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
        """Purposes, message types to send and to receive of a new partner of `role`, read off the
        rules (`hub partners add` writes them into the profile, for review). Every partner receives
        the hub's answers; an operator sends and receives nothing."""
        if role == "operator":
            return [], [], []
        answers = {"administration.quittung.0020", "administration.rueckweisung.0010"}
        types = sorted(message_types)
        sends: set[str] = set()
        receives: set[str] = set(answers)
        purposes: set[str] = {"administration"}
        for route in self.routes:
            matching = {t for t in types if fnmatchcase(t, route.message_type)}
            if route.sender_role in (None, role):
                sends |= matching
            targeted = (
                (route.to == "reader" and route.reader_role in (None, role))
                or (route.to == "case_owner" and role in self.case_owner_roles)
                or (route.to == "case_members" and route.member_role in (None, role))
            )
            if targeted:
                receives |= matching
                purposes.add(route.purpose)
        return sorted(purposes), sorted(sends - answers), sorted(receives)
