"""The change vocabulary shared by every schema differ: what kind of change, where, and what it breaks.

Why a module of its own: the JSON Schema and XSD differs must speak one language so the level policy
(:mod:`hub.schemas.compat.levels`) can judge a change without knowing which engine found it. A
:class:`Change` carries its own consequences (``breaks_backward``/``breaks_forward``) because the
content model, not the kind alone, decides them (JSON open content models, XSD wildcards).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Kinds of change. Each kind has the consequences below unless the content model says otherwise
# (JSON open content models; XSD wildcards); the Change carries the actual flags.
ADDED_OPTIONAL = "added_optional"
ADDED_REQUIRED = "added_required"
REMOVED_OPTIONAL = "removed_optional"
REMOVED_REQUIRED = "removed_required"
TYPE_NARROWED = "type_narrowed"
TYPE_WIDENED = "type_widened"
TYPE_CHANGED = "type_changed"  # neither contains the other (or undecidable): breaks both
ENUM_VALUE_ADDED = "enum_value_added"
ENUM_VALUE_REMOVED = "enum_value_removed"
OCCURS_TIGHTENED = "occurs_tightened"  # minOccurs up / maxOccurs down / became required
OCCURS_LOOSENED = "occurs_loosened"
ORDER_CHANGED = "order_changed"
FIXED_VALUE_CHANGED = "fixed_value_changed"
NAMESPACE_CHANGED = "namespace_changed"
ID_CHANGED = "id_changed"  # JSON Schema $id: identity only, no effect on which documents are valid

Direction = Literal["narrowed", "widened", "changed"]
Writers = Literal["any-valid", "declared-only"]


@dataclass(frozen=True)
class Change:
    """One difference between two schema versions and what it breaks.

    ``breaks_backward``: some document valid under the old schema is invalid under the new one.
    ``breaks_forward``: some document valid under the new schema is invalid under the old one.
    """

    kind: str
    path: str
    detail: str
    breaks_backward: bool
    breaks_forward: bool

    def __str__(self) -> str:
        return f"{self.kind} at {self.path}: {self.detail}"


def _flags(direction: Direction) -> tuple[bool, bool]:
    """(breaks_backward, breaks_forward) for a constraint that got stricter/looser/other."""
    return {"narrowed": (True, False), "widened": (False, True), "changed": (True, True)}[direction]


def type_change(path: str, detail: str, direction: Direction) -> Change:
    """A type change whose kind and flags follow from whether the accepted values got fewer or more."""
    kind = {"narrowed": TYPE_NARROWED, "widened": TYPE_WIDENED, "changed": TYPE_CHANGED}[direction]
    return Change(kind, path, detail, *_flags(direction))
