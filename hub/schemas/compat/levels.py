"""The level policy: which changes a declared compatibility level refuses, over a whole version history.

Why a module of its own: the differs only say what changed and what it breaks; whether that is
allowed is the message type's promise to partners (contract.yaml ``compatibility``), decided here for
XSD and JSON Schema alike. Semantics as in Confluent / Apicurio, applied to validating contracts:

* BACKWARD: the new schema accepts every document the old one accepted (a consumer on the new
  version reads data written with the old one). A change that makes the schema *stricter*
  somewhere (narrowed type, removed element, tightened occurrence, removed enum value) breaks it.
* FORWARD: the old schema accepts every document the new one accepts. A change that makes the
  schema *looser* somewhere (widened type, added element, added enum value) breaks it.
* FULL: both. NONE: nothing is checked.
* ``*_TRANSITIVE``: the new version is checked against every earlier version, not only its
  predecessor. :func:`check` checks a whole history: each version against its predecessor, or
  against all earlier versions for the transitive levels.

Transitive levels matter only for JSON Schema's ``writers="declared-only"`` reading: under
"any-valid" every check is a set-inclusion test, and inclusion is transitive, so a chain of BACKWARD
steps is always BACKWARD end to end; under "declared-only" it is not (v1 has ``f: integer``, v2 drops
``f``, v3 re-adds ``f: string``: each step is fine, v1 data is not readable by v3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from hub.schemas.catalog import Catalog
from hub.schemas.compat.changes import Change, Writers
from hub.schemas.compat.jsonschema import diff_json_schema
from hub.schemas.compat.xsd import as_xmlschema, diff_xsd


class Level(str, Enum):
    """A compatibility level as contract.yaml declares it; which directions it checks, and how far back."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    FORWARD = "FORWARD"
    FULL = "FULL"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def directions(self) -> tuple[str, ...]:
        base = self.value.removesuffix("_TRANSITIVE")
        return {
            "NONE": (),
            "BACKWARD": ("backward",),
            "FORWARD": ("forward",),
            "FULL": ("backward", "forward"),
        }[base]


@dataclass(frozen=True)
class Violation:
    """A change between two named versions that breaks the declared level."""

    level: str
    old_version: str
    new_version: str
    direction: str  # "backward" | "forward"
    change: Change

    @property
    def message(self) -> str:
        reader, data = (
            (self.new_version, self.old_version)
            if self.direction == "backward"
            else (self.old_version, self.new_version)
        )
        return (
            f"{self.new_version} is not {self.direction} compatible with {self.old_version} "
            f"(level {self.level}; a {reader} reader rejects {data} data): "
            f"{self.change.kind} at {self.change.path}: {self.change.detail}"
        )

    def __str__(self) -> str:
        return self.message


def diff(
    old: Any, new: Any, fmt: Literal["xsd", "json"], *, catalog: Catalog | Path | str | None = None,
    writers: Writers = "any-valid",
) -> list[Change]:
    """Dispatch to :func:`diff_xsd` or :func:`diff_json_schema`."""
    if fmt == "xsd":
        return diff_xsd(old, new, catalog)
    if fmt == "json":
        return diff_json_schema(old, new, writers=writers)
    raise ValueError(f"unknown schema format {fmt!r} (expected 'xsd' or 'json')")


def check(
    level: str | Level,
    versions: Sequence[tuple[str, Any]],
    fmt: Literal["xsd", "json"],
    *,
    catalog: Catalog | Path | str | None = None,
    writers: Writers = "any-valid",
) -> list[Violation]:
    """Check a version history (oldest first) against a compatibility level.

    Non-transitive levels check each version against its predecessor; transitive ones check
    each version against every earlier version. Returns one Violation per breaking change, each
    naming both versions and the change; an empty list means the history satisfies the level.
    To vet a candidate, pass the registered history plus the candidate as the last entry.
    """
    try:
        lvl = level if isinstance(level, Level) else Level(str(level).upper())
    except ValueError:
        raise ValueError(
            f"unknown compatibility level {level!r}; one of {[m.value for m in Level]}"
        ) from None
    if not lvl.directions or len(versions) < 2:
        return []
    schemas = list(versions)
    if fmt == "xsd":  # build each version once, not once per pair
        schemas = [(v, as_xmlschema(s, catalog)) for v, s in versions]
    violations: list[Violation] = []
    for j in range(1, len(schemas)):
        earlier = range(j) if lvl.transitive else (j - 1,)
        for i in earlier:
            (ov, os_), (nv, ns_) = schemas[i], schemas[j]
            for change in diff(os_, ns_, fmt, catalog=catalog, writers=writers):
                for direction in lvl.directions:
                    broken = change.breaks_backward if direction == "backward" else change.breaks_forward
                    if broken:
                        violations.append(Violation(lvl.value, ov, nv, direction, change))
    return violations
