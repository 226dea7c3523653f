"""Schema-registry style compatibility checks for XSD and JSON Schema contract versions.

Why: a contract version is a promise to partners. The registry must refuse a new version whose
change breaks the compatibility level declared for the message type (architecture.md,
"Contracts are the product"), and say *what* broke, for XSD as well as JSON Schema.

Semantics (as in Confluent / Apicurio, applied to validating contracts):

* BACKWARD: the new schema accepts every document the old one accepted (a consumer on the new
  version reads data written with the old one). A change that makes the schema *stricter*
  somewhere (narrowed type, removed element, tightened occurrence, removed enum value) breaks it.
* FORWARD: the old schema accepts every document the new one accepts. A change that makes the
  schema *looser* somewhere (widened type, added element, added enum value) breaks it.
* FULL: both. NONE: nothing is checked.
* ``*_TRANSITIVE``: the new version is checked against every earlier version, not only its
  predecessor. :func:`check` checks a whole history: each version against its predecessor, or
  against all earlier versions for the transitive levels.

Content models:

* XSD content models are *closed*: an element the schema does not declare is invalid (unless a
  lax/skip wildcard admits it, which is honoured). So adding an optional element breaks FORWARD
  (old readers reject it) and removing one breaks BACKWARD (old data carrying it is rejected).
* JSON Schema honours ``additionalProperties``. With ``false`` (closed) the XSD reasoning holds.
  With it absent or ``true`` (open) an undeclared property may carry *any* value, so adding a
  property breaks BACKWARD (old data may already carry that name with another type) and
  removing one breaks FORWARD (new data may carry it with a value the old schema rejects). With a
  schema as ``additionalProperties`` (partially open) the property's old and new schemas are
  compared like any other type change. This is the "any valid document" reading (``writers=
  "any-valid"``, the default), the one Confluent applies to JSON Schema.
* ``writers="declared-only"`` instead assumes writers only emit properties their schema
  declares (Avro's reader/writer view, the tolerant-reader habit). Under it adding or removing
  an optional property of an open model is harmless in the direction the open model covers.
  It is the reason transitive levels exist at all: under "any-valid" every check here is a
  set-inclusion test, and inclusion is transitive, so a chain of BACKWARD steps is always
  BACKWARD end to end; under "declared-only" it is not (v1 has ``f: integer``, v2 drops ``f``,
  v3 re-adds ``f: string``: each step is fine, v1 data is not readable by v3).

Where a relation cannot be decided cheaply (two different regex patterns, changed unions or
``anyOf``/``oneOf``, a sequence turned into a choice) the change is reported as breaking both
directions: the registry errs on the side of refusing, with a message saying why.
Not analysed: identity constraints (key/keyref), ``xsi:type`` substitution, substitution
groups, attribute wildcards, ``if/then/else``; differences there are reported conservatively
only where they surface as one of the kinds below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import xmlschema
from xmlschema.validators import (
    XsdAnyElement,
    XsdAtomicBuiltin,
    XsdElement,
    XsdGroup,
)

from hub.schemas.catalog import Catalog, xmlschema_schema

__all__ = [
    "Change",
    "Level",
    "Violation",
    "check",
    "diff",
    "diff_json_schema",
    "diff_xsd",
]

XSD_NS = "http://www.w3.org/2001/XMLSchema"

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


class Level(str, Enum):
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


def _flags(direction: Direction) -> tuple[bool, bool]:
    """(breaks_backward, breaks_forward) for a constraint that got stricter/looser/other."""
    return {"narrowed": (True, False), "widened": (False, True), "changed": (True, True)}[direction]


def _type_change(path: str, detail: str, direction: Direction) -> Change:
    kind = {"narrowed": TYPE_NARROWED, "widened": TYPE_WIDENED, "changed": TYPE_CHANGED}[direction]
    return Change(kind, path, detail, *_flags(direction))


# --------------------------------------------------------------------------------------------
# Shared constraint comparisons
# --------------------------------------------------------------------------------------------

Bound = tuple[Any, bool]  # (value, exclusive)


def _cmp_lower(old: Bound | None, new: Bound | None) -> Direction | None:
    if old == new:
        return None
    if old is None:
        return "narrowed"
    if new is None:
        return "widened"
    try:
        if new[0] == old[0]:
            return "narrowed" if new[1] and not old[1] else "widened"
        return "narrowed" if new[0] > old[0] else "widened"
    except TypeError:
        return "changed"


def _cmp_upper(old: Bound | None, new: Bound | None) -> Direction | None:
    if old == new:
        return None
    if old is None:
        return "narrowed"
    if new is None:
        return "widened"
    try:
        if new[0] == old[0]:
            return "narrowed" if new[1] and not old[1] else "widened"
        return "narrowed" if new[0] < old[0] else "widened"
    except TypeError:
        return "changed"


def _cmp_patterns(old: Sequence[str], new: Sequence[str]) -> Direction | None:
    """Patterns are ANDed; we can only decide added/removed ones, a replaced regex is 'changed'."""
    o, n = set(old), set(new)
    if o == n:
        return None
    if o < n:
        return "narrowed"
    if n < o:
        return "widened"
    return "changed"


def _enum_changes(path: str, old: Sequence[Any] | None, new: Sequence[Any] | None) -> list[Change]:
    if old is None and new is None:
        return []
    if old is None:
        return [_type_change(path, f"restricted to the values {list(new or [])!r}", "narrowed")]
    if new is None:
        return [_type_change(path, f"value list {list(old)!r} lifted", "widened")]
    out: list[Change] = []
    old_keys = {_key(v) for v in old}
    new_keys = {_key(v) for v in new}
    for v in new:
        if _key(v) not in old_keys:
            out.append(Change(ENUM_VALUE_ADDED, path, f"value {v!r} added", False, True))
    for v in old:
        if _key(v) not in new_keys:
            out.append(Change(ENUM_VALUE_REMOVED, path, f"value {v!r} removed", True, False))
    return out


def _key(value: Any) -> str:
    """Enumeration identity: 1 and 1.0 are the same JSON number, True and 1 are not."""
    return f"{type(value).__name__ if isinstance(value, (bool, str)) else 'num'}:{value!r}"


def _occurs_changes(
    path: str, old: tuple[int, int | None], new: tuple[int, int | None], what: str = "occurrence"
) -> list[Change]:
    """Changes to (min, max) counts; max None = unbounded. Both ends may move at once."""
    out: list[Change] = []
    (omin, omax), (nmin, nmax) = old, new
    if nmin > omin:
        out.append(Change(OCCURS_TIGHTENED, path, f"minimum {what} {omin} -> {nmin}", True, False))
    elif nmin < omin:
        out.append(Change(OCCURS_LOOSENED, path, f"minimum {what} {omin} -> {nmin}", False, True))
    if omax != nmax:
        fmt = lambda m: "unbounded" if m is None else str(m)  # noqa: E731
        tighter = nmax is not None and (omax is None or nmax < omax)
        out.append(
            Change(
                OCCURS_TIGHTENED if tighter else OCCURS_LOOSENED,
                path,
                f"maximum {what} {fmt(omax)} -> {fmt(nmax)}",
                tighter,
                not tighter,
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------------------------

# Keywords with no effect on which documents are valid.
_ANNOTATIONS = frozenset(
    {
        "title", "description", "default", "examples", "example", "$comment", "deprecated",
        "readOnly", "writeOnly", "$schema", "$anchor", "$defs", "definitions", "contentMediaType",
        "contentEncoding", "x-order",
    }
)
_LOWER = {"minimum": False, "exclusiveMinimum": True}
_UPPER = {"maximum": False, "exclusiveMaximum": True}
_COUNT_LOWER = ("minLength", "minProperties")
_COUNT_UPPER = ("maxLength", "maxProperties")
_HANDLED = frozenset(
    {
        "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "multipleOf", "minLength", "maxLength", "pattern", "format", "minItems", "maxItems",
        "uniqueItems", "items", "prefixItems", "properties", "required", "additionalProperties",
        "patternProperties", "minProperties", "maxProperties", "$ref", "$id", "id",
    }
)
_JSON_TYPES = ("null", "boolean", "object", "array", "number", "integer", "string")


def diff_json_schema(
    old: Mapping[str, Any] | bool, new: Mapping[str, Any] | bool, *, writers: Writers = "any-valid"
) -> list[Change]:
    """Compare two JSON Schemas; paths are JSON pointers into the *new* schema's layout.

    ``writers`` chooses how open content models (``additionalProperties`` absent/true) are
    read; see the module docstring. Local ``$ref`` (``#/...``) are followed; remote refs are
    compared by their text.
    """
    differ = _JsonDiffer(old, new, writers)
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        oid, nid = old.get("$id", old.get("id")), new.get("$id", new.get("id"))
        if oid != nid:
            differ.out.append(
                Change(
                    ID_CHANGED, "/$id", f"$id {oid!r} -> {nid!r} (identity only; JSON Schema has "
                    "no namespaces, so this does not change which documents are valid)",
                    False, False,
                )
            )
    differ.node(old, new, "")
    return differ.out


class _JsonDiffer:
    def __init__(self, old_root: Any, new_root: Any, writers: Writers) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.writers = writers
        self.out: list[Change] = []
        self._seen: set[tuple[int, int]] = set()
        self._alive: list[Any] = []  # keeps merged $ref dicts alive so their ids stay unique

    # -- helpers --
    @staticmethod
    def _resolve(schema: Any, root: Any) -> Any:
        hops = 0
        while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            if not ref.startswith("#") or hops > 50:
                return schema
            target: Any = root
            for part in [p for p in ref[1:].split("/") if p]:
                part = part.replace("~1", "/").replace("~0", "~")
                if isinstance(target, Mapping) and part in target:
                    target = target[part]
                else:
                    return schema
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings} if isinstance(target, Mapping) and siblings else target
            hops += 1
        return schema

    @staticmethod
    def _is_true(s: Any) -> bool:
        return s is True or (isinstance(s, Mapping) and not (set(s) - _ANNOTATIONS - {"$id", "id"}))

    @staticmethod
    def _is_false(s: Any) -> bool:
        return s is False or (isinstance(s, Mapping) and s.get("not") in ({}, True))

    @staticmethod
    def _types(s: Mapping[str, Any]) -> set[str] | None:
        t = s.get("type")
        if t is None:
            return None
        return {t} if isinstance(t, str) else set(t)

    def _sub(self, old: Any, new: Any, path: str) -> tuple[bool, bool, list[Change]]:
        """Diff into a scratch list; return (breaks_backward, breaks_forward, changes)."""
        saved, self.out = self.out, []
        saved_seen = set(self._seen)  # a scratch walk must not hide pairs from the real walk
        try:
            self.node(old, new, path)
            changes = self.out
        finally:
            self.out = saved
            self._seen = saved_seen
        return (
            any(c.breaks_backward for c in changes),
            any(c.breaks_forward for c in changes),
            changes,
        )

    # -- the walk --
    def node(self, old: Any, new: Any, path: str) -> None:
        old = self._resolve(old, self.old_root)
        new = self._resolve(new, self.new_root)
        if old == new:
            return
        key = (id(old), id(new))
        if key in self._seen:  # recursive schemas
            return
        self._seen.add(key)
        self._alive.append((old, new))
        where = path or "/"
        o_true, n_true, o_false, n_false = (
            self._is_true(old), self._is_true(new), self._is_false(old), self._is_false(new)
        )
        if (o_true and n_true) or (o_false and n_false):
            return
        if o_false or n_true:
            self.out.append(_type_change(where, "now accepts what was forbidden before", "widened"))
            return
        if n_false or o_true:
            self.out.append(_type_change(where, "constraints added to an unconstrained value", "narrowed"))
            return
        assert isinstance(old, Mapping) and isinstance(new, Mapping)

        if not self._compare_types(old, new, where):
            return  # disjoint types: nothing else is comparable
        self.out.extend(_enum_changes(where, _enum_of(old), _enum_of(new)))
        for kw, excl in _LOWER.items():
            self._bound(kw, _json_bound(old, kw, excl), _json_bound(new, kw, excl), _cmp_lower, where)
        for kw, excl in _UPPER.items():
            self._bound(kw, _json_bound(old, kw, excl), _json_bound(new, kw, excl), _cmp_upper, where)
        for kw in _COUNT_LOWER:
            self._bound(kw, _plain(old, kw), _plain(new, kw), _cmp_lower, where)
        for kw in _COUNT_UPPER:
            self._bound(kw, _plain(old, kw), _plain(new, kw), _cmp_upper, where)
        self._multiple_of(old, new, where)
        for kw in ("pattern", "format"):
            d = _cmp_patterns([old[kw]] if kw in old else [], [new[kw]] if kw in new else [])
            if d:
                self.out.append(_type_change(where, f"{kw} {old.get(kw)!r} -> {new.get(kw)!r}", d))
        if bool(old.get("uniqueItems")) != bool(new.get("uniqueItems")):
            d2: Direction = "narrowed" if new.get("uniqueItems") else "widened"
            self.out.append(_type_change(where, f"uniqueItems -> {bool(new.get('uniqueItems'))}", d2))
        items_count = ((old.get("minItems", 0), old.get("maxItems")), (new.get("minItems", 0), new.get("maxItems")))
        self.out.extend(_occurs_changes(where, *items_count, what="items"))
        self._items(old, new, path)
        self._object(old, new, path)
        for kw in sorted((set(old) | set(new)) - _HANDLED - _ANNOTATIONS):
            if old.get(kw) != new.get(kw):
                self.out.append(
                    _type_change(
                        f"{where}", f"{kw!r} changed; not analysed, assumed to break both ways",
                        "changed",
                    )
                )

    def _compare_types(self, old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> bool:
        ot, nt = self._types(old), self._types(new)
        if ot == nt:
            return True
        expand = lambda ts: set(_JSON_TYPES) if ts is None else (ts | {"integer"} if "number" in ts else ts)  # noqa: E731
        oe, ne = expand(ot), expand(nt)
        if oe == ne:
            return True
        desc = f"type {sorted(ot) if ot else 'any'} -> {sorted(nt) if nt else 'any'}"
        if ne < oe:
            self.out.append(_type_change(where, desc, "narrowed"))
        elif oe < ne:
            self.out.append(_type_change(where, desc, "widened"))
        else:
            self.out.append(_type_change(where, desc, "changed"))
            return bool(oe & ne)
        return True

    def _bound(self, kw: str, ob: Bound | None, nb: Bound | None, cmp: Any, where: str) -> None:
        d = cmp(ob, nb)
        if d:
            self.out.append(
                _type_change(where, f"{kw} {ob[0] if ob else None!r} -> {nb[0] if nb else None!r}", d)
            )

    def _multiple_of(self, old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> None:
        om, nm = old.get("multipleOf"), new.get("multipleOf")
        if om == nm:
            return
        d: Direction
        if om is None:
            d = "narrowed"
        elif nm is None:
            d = "widened"
        else:
            o, n = Decimal(str(om)), Decimal(str(nm))
            d = "narrowed" if n % o == 0 else "widened" if o % n == 0 else "changed"
        self.out.append(_type_change(where, f"multipleOf {om!r} -> {nm!r}", d))

    def _items(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> None:
        oi, ni = old.get("items"), new.get("items")
        if isinstance(oi, list) or isinstance(ni, list) or "prefixItems" in old or "prefixItems" in new:
            if (oi, old.get("prefixItems")) != (ni, new.get("prefixItems")):
                self.out.append(
                    _type_change(path or "/", "tuple items changed; not analysed", "changed")
                )
            return
        if oi is None and ni is None:
            return
        self.node(True if oi is None else oi, True if ni is None else ni, f"{path}/items")

    def _effective(self, schema: Mapping[str, Any], name: str) -> Any:
        """The schema a property value must satisfy, whether or not it is declared."""
        props = schema.get("properties", {})
        if name in props:
            return props[name]
        for pattern, sub in schema.get("patternProperties", {}).items():
            if re.search(pattern, name):
                return sub
        return schema.get("additionalProperties", True)

    def _object(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> None:
        op, np_ = old.get("properties", {}), new.get("properties", {})
        oreq, nreq = set(old.get("required", [])), set(new.get("required", []))
        if not (op or np_ or oreq or nreq or "additionalProperties" in old or "additionalProperties" in new):
            return
        declared_only = self.writers == "declared-only"
        for name in np_:
            ppath = f"{path}/properties/{_esc(name)}"
            if name in op:
                self.node(op[name], np_[name], ppath)
                continue
            required = name in nreq and name not in oreq
            eff_old = self._effective(old, name)
            bb, bf, inner = self._sub(eff_old, np_[name], ppath)
            model = _model(old)
            if declared_only and model != "closed":
                bb = False  # old writers never emitted the undeclared property
            if required:
                bb = True
            why = {
                "closed": "old schema is closed (additionalProperties: false), so old readers reject it",
                "open": "old schema is open, so old data may already carry this name with any value"
                if not declared_only else "old schema is open; writers emit declared properties only",
                "partial": "compared with the old additionalProperties schema",
            }[model]
            detail = f"property {name!r} added as {'required' if required else 'optional'} ({why})"
            if inner and model == "partial":
                detail += ": " + "; ".join(c.detail for c in inner)
            self.out.append(Change(ADDED_REQUIRED if required else ADDED_OPTIONAL, ppath, detail, bb, bf))
        for name in op:
            if name in np_:
                continue
            ppath = f"{path}/properties/{_esc(name)}"
            was_required = name in oreq and name not in nreq
            eff_new = self._effective(new, name)
            bb, bf, inner = self._sub(op[name], eff_new, ppath)
            model = _model(new)
            if declared_only and model != "closed":
                bf = False  # new writers never emit the property they no longer declare
            if was_required:
                bf = True
            why = {
                "closed": "new schema is closed, so old data carrying it is rejected",
                "open": "new schema is open, so new data may carry it with any value"
                if not declared_only else "new schema is open; writers emit declared properties only",
                "partial": "compared with the new additionalProperties schema",
            }[model]
            detail = f"property {name!r} removed (was {'required' if name in oreq else 'optional'}; {why})"
            if inner and model == "partial":
                detail += ": " + "; ".join(c.detail for c in inner)
            kind = REMOVED_REQUIRED if name in oreq else REMOVED_OPTIONAL
            self.out.append(Change(kind, ppath, detail, bb, bf))
        for name in sorted((oreq ^ nreq) - (set(op) ^ set(np_))):
            ppath = f"{path}/properties/{_esc(name)}"
            if name in nreq:
                self.out.append(Change(OCCURS_TIGHTENED, ppath, f"property {name!r} became required", True, False))
            else:
                self.out.append(Change(OCCURS_LOOSENED, ppath, f"property {name!r} no longer required", False, True))
        if old.get("patternProperties") != new.get("patternProperties"):
            self.out.append(_type_change(path or "/", "patternProperties changed; not analysed", "changed"))
        oap, nap = old.get("additionalProperties", True), new.get("additionalProperties", True)
        if oap != nap:
            bb, bf, _ = self._sub(oap, nap, f"{path}/additionalProperties")
            if declared_only:
                bb = bf = False  # nobody writes undeclared properties under this reading
            closed = self._is_false(nap)
            what = "closed" if closed else "opened" if self._is_true(nap) else "changed"
            self.out.append(
                Change(
                    TYPE_NARROWED if bb and not bf else TYPE_WIDENED if bf and not bb else TYPE_CHANGED,
                    f"{path}/additionalProperties",
                    f"content model {what} (additionalProperties {oap!r} -> {nap!r})",
                    bb,
                    bf,
                )
            )


def _model(schema: Mapping[str, Any]) -> str:
    ap = schema.get("additionalProperties", True)
    if ap is False or (isinstance(ap, Mapping) and ap.get("not") in ({}, True)):
        return "closed"
    if ap is True or ap == {}:
        return "open"
    return "partial"


def _enum_of(s: Mapping[str, Any]) -> list[Any] | None:
    if "const" in s:
        return [s["const"]]
    return list(s["enum"]) if "enum" in s else None


def _json_bound(s: Mapping[str, Any], kw: str, exclusive: bool) -> Bound | None:
    v = s.get(kw)
    if v is None or isinstance(v, bool):  # draft-4 boolean exclusive* modifies minimum/maximum
        if not exclusive and kw in s:
            flag = s.get("exclusiveMinimum" if kw == "minimum" else "exclusiveMaximum") is True
            return (s[kw], flag)
        return None
    return (v, exclusive)


def _plain(s: Mapping[str, Any], kw: str) -> Bound | None:
    return (s[kw], False) if kw in s else None


def _esc(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


# --------------------------------------------------------------------------------------------
# XSD
# --------------------------------------------------------------------------------------------

XsdSource = Path | str | bytes | xmlschema.XMLSchema


def _as_xmlschema(src: XsdSource, catalog: Catalog | Path | str | None) -> xmlschema.XMLSchema:
    if isinstance(src, xmlschema.XMLSchema):
        return src
    return xmlschema_schema(src if isinstance(src, bytes) else Path(src), catalog)


def diff_xsd(
    old: XsdSource, new: XsdSource, catalog: Catalog | Path | str | None = None
) -> list[Change]:
    """Compare two XSD versions by introspecting them with xmlschema.

    Walks global elements (the possible document roots) and, recursively, their complex types:
    attributes (use, fixed value, type), content models (children by name with their effective
    min/maxOccurs, sequence order, model kind), and simple types (nearest built-in base,
    facets, enumerations, patterns). Paths are XPath-like (``/prefix:root/prefix:child/@attr``).
    Imports resolve only through ``catalog``; nothing is fetched from the network.
    """
    os_, ns_ = _as_xmlschema(old, catalog), _as_xmlschema(new, catalog)
    if os_.target_namespace != ns_.target_namespace:
        return [
            Change(
                NAMESPACE_CHANGED, "/",
                f"target namespace {os_.target_namespace!r} -> {ns_.target_namespace!r}: every "
                "element name changes, so no document is valid under both",
                True, True,
            )
        ]
    return _XsdDiffer(os_, ns_).run()


@dataclass
class _Particle:
    element: XsdElement
    min: int
    max: int | None


class _XsdDiffer:
    def __init__(self, old: xmlschema.XMLSchema, new: xmlschema.XMLSchema) -> None:
        self.old, self.new = old, new
        self.out: list[Change] = []
        self._seen: set[tuple[int, int]] = set()
        self._ns: dict[str, str] = {}
        for sch in new.maps.iter_schemas():  # prefixes as the schema files declare them
            for prefix, uri in sch.namespaces.items():
                if prefix and uri not in self._ns:
                    self._ns[uri] = prefix

    def _name(self, qname: str | None) -> str:
        if not qname:
            return "?"
        if qname.startswith("{"):
            uri, local = qname[1:].split("}", 1)
            prefix = self._ns.get(uri)
            return f"{prefix}:{local}" if prefix else local
        return qname

    def run(self) -> list[Change]:
        oe, ne = self.old.elements, self.new.elements
        for name in ne:
            if name not in oe:
                self.out.append(Change(ADDED_OPTIONAL, f"/{self._name(ne[name].name)}",
                                       "global element (possible document root) added; old "
                                       "readers reject documents with it", False, True))
        for name in oe:
            path = f"/{self._name(oe[name].name)}"
            if name not in ne:
                self.out.append(Change(REMOVED_OPTIONAL, path,
                                       "global element (possible document root) removed; old "
                                       "documents with it are rejected", True, False))
            else:
                self._element(oe[name], ne[name], path)
        return self.out

    # -- elements and types --
    def _element(self, old: XsdElement, new: XsdElement, path: str) -> None:
        if old.nillable != new.nillable:
            d: Direction = "widened" if new.nillable else "narrowed"
            self.out.append(_type_change(path, f"nillable {old.nillable} -> {new.nillable}", d))
        self._fixed(path, old.fixed, new.fixed)
        self._type(old.type, new.type, path)

    def _fixed(self, path: str, old: Any, new: Any) -> None:
        if old == new:
            return
        if old is None:
            self.out.append(_type_change(path, f"value fixed to {new!r}", "narrowed"))
        elif new is None:
            self.out.append(_type_change(path, f"fixed value {old!r} lifted", "widened"))
        else:
            self.out.append(Change(FIXED_VALUE_CHANGED, path, f"fixed value {old!r} -> {new!r}", True, True))

    def _type(self, old: Any, new: Any, path: str) -> None:
        key = (id(old), id(new))
        if key in self._seen:
            return  # a shared type is reported once, at its first use (and recursion stops)
        self._seen.add(key)
        before = len(self.out)
        self._type_body(old, new, path)
        if getattr(new, "name", None) and not _is_builtin(new) and len(self.out) > before:
            note = f" [in type {self._name(new.name)}; further uses of the type not repeated]"
            self.out[before:] = [
                c if "[in type " in c.detail else
                Change(c.kind, c.path, c.detail + note, c.breaks_backward, c.breaks_forward)
                for c in self.out[before:]
            ]

    def _type_body(self, old: Any, new: Any, path: str) -> None:
        if old.is_simple() and new.is_simple():
            self._simple(old, new, path)
            return
        if old.is_simple() != new.is_simple():
            if not (old.is_complex() and old.has_simple_content() or new.is_complex() and new.has_simple_content()):
                self.out.append(_type_change(path, "simple type <-> complex type", "changed"))
                return
        self._attributes(old, new, path)
        o_simple = old.content if old.is_complex() and old.has_simple_content() else old if old.is_simple() else None
        n_simple = new.content if new.is_complex() and new.has_simple_content() else new if new.is_simple() else None
        if o_simple is not None and n_simple is not None:
            self._simple(o_simple, n_simple, path)
            return
        if (o_simple is None) != (n_simple is None):
            self.out.append(_type_change(path, "simple content <-> element content", "changed"))
            return
        if old.mixed != new.mixed:
            self.out.append(_type_change(path, f"mixed {old.mixed} -> {new.mixed}", "widened" if new.mixed else "narrowed"))
        self._content(old.content, new.content, path)

    def _attributes(self, old: Any, new: Any, path: str) -> None:
        oa = dict(old.attributes.items()) if old.is_complex() else {}
        na = dict(new.attributes.items()) if new.is_complex() else {}
        for name, attr in na.items():
            apath = f"{path}/@{self._name(name)}"
            if name is None:
                continue  # attribute wildcard: not analysed
            if name not in oa:
                req = attr.use == "required"
                self.out.append(Change(ADDED_REQUIRED if req else ADDED_OPTIONAL, apath,
                                       f"attribute added as {attr.use}", req, True))
                continue
            o = oa[name]
            if o.use != attr.use:
                self.out.extend(_occurs_changes(apath, _attr_occurs(o), _attr_occurs(attr), "use"))
            self._fixed(apath, o.fixed, attr.fixed)
            self._type(o.type, attr.type, apath)
        for name, attr in oa.items():
            if name is not None and name not in na:
                req = attr.use == "required"
                self.out.append(Change(REMOVED_REQUIRED if req else REMOVED_OPTIONAL,
                                       f"{path}/@{self._name(name)}",
                                       f"attribute removed (was {attr.use})", True, req))

    def _content(self, old: Any, new: Any, path: str) -> None:
        o_parts, o_order, o_wild, o_models = _flatten(old)
        n_parts, n_order, n_wild, n_models = _flatten(new)
        if o_models != n_models:
            self.out.append(_type_change(path, f"content model groups {o_models} -> {n_models}; "
                                         "not analysed, assumed to break both ways", "changed"))
        for name, p in n_parts.items():
            cpath = f"{path}/{self._name(name)}"
            if name in o_parts:
                o = o_parts[name]
                self.out.extend(_occurs_changes(cpath, (o.min, o.max), (p.min, p.max)))
                self._element(o.element, p.element, cpath)
                continue
            req = p.min > 0
            admitted = _wildcard_admits(o_wild, name)
            self.out.append(Change(
                ADDED_REQUIRED if req else ADDED_OPTIONAL, cpath,
                f"element added with minOccurs={p.min}"
                + ("; a lax/skip wildcard in the old model admits it" if admitted
                   else "; old readers reject the unknown element (closed content)"),
                req, not admitted,
            ))
        for name, p in o_parts.items():
            if name in n_parts:
                continue
            cpath = f"{path}/{self._name(name)}"
            req = p.min > 0
            admitted = _wildcard_admits(n_wild, name)
            self.out.append(Change(
                REMOVED_REQUIRED if req else REMOVED_OPTIONAL, cpath,
                f"element removed (had minOccurs={p.min})"
                + ("; a lax/skip wildcard in the new model still admits it" if admitted
                   else "; old data carrying it is rejected (closed content)"),
                not admitted, req,
            ))
        common_old = [n for n in o_order if n in n_parts]
        common_new = [n for n in n_order if n in o_parts]
        if common_old != common_new and "sequence" in o_models:
            self.out.append(Change(ORDER_CHANGED, path, "order of child elements changed: "
                                   f"{[self._name(n) for n in common_old]} -> "
                                   f"{[self._name(n) for n in common_new]}", True, True))
        if len(o_wild) != len(n_wild):
            d: Direction = "widened" if len(n_wild) > len(o_wild) else "narrowed"
            self.out.append(_type_change(path, f"element wildcards {len(o_wild)} -> {len(n_wild)}", d))

    def _simple(self, old: Any, new: Any, path: str) -> None:
        op, np_ = _simple_profile(old), _simple_profile(new)
        if op["variety"] != np_["variety"]:
            self.out.append(_type_change(path, f"{op['variety']} type -> {np_['variety']} type", "changed"))
            return
        if op["variety"] == "union":
            if op["members"] != np_["members"]:
                self.out.append(_type_change(path, f"union members {op['members']} -> {np_['members']}; "
                                             "not analysed", "changed"))
            return
        if op["variety"] == "list" and old.item_type is not None and new.item_type is not None:
            self._simple(old.item_type, new.item_type, f"{path} (list item)")
        ob, nb = op["builtin"], np_["builtin"]
        if ob != nb:
            oc, nc = op["chain"], np_["chain"]
            desc = f"base type {self._name(ob)} -> {self._name(nb)}"
            if ob in nc:
                self.out.append(_type_change(path, desc, "narrowed"))
            elif nb in oc:
                self.out.append(_type_change(path, desc, "widened"))
            else:
                self.out.append(_type_change(path, desc, "changed"))
                return
        self.out.extend(_enum_changes(path, op["enum"], np_["enum"]))
        self._facet_bound(path, "lower", op["lower"], np_["lower"], _cmp_lower)
        self._facet_bound(path, "upper", op["upper"], np_["upper"], _cmp_upper)
        for facet, cmp in (("minLength", _cmp_lower), ("maxLength", _cmp_upper),
                           ("totalDigits", _cmp_upper), ("fractionDigits", _cmp_upper)):
            ov, nv = op["facets"].get(facet), np_["facets"].get(facet)
            d = cmp(None if ov is None else (ov, False), None if nv is None else (nv, False))
            if d:
                self.out.append(_type_change(path, f"{facet} {ov!r} -> {nv!r}", d))
        ol, nl = op["facets"].get("length"), np_["facets"].get("length")
        if ol != nl:
            d2: Direction = "narrowed" if ol is None else "widened" if nl is None else "changed"
            self.out.append(_type_change(path, f"length {ol!r} -> {nl!r}", d2))
        ops, nps = op["patterns"], np_["patterns"]
        d3 = _cmp_patterns(ops, nps)
        if d3:
            self.out.append(_type_change(path, f"patterns {ops} -> {nps}", d3))

    def _facet_bound(self, path: str, side: str, ob: Bound | None, nb: Bound | None, cmp: Any) -> None:
        d = cmp(ob, nb)
        if d:
            fmt = lambda b: "none" if b is None else f"{'>' if side == 'lower' else '<'}{'' if b[1] else '='} {b[0]}"  # noqa: E731
            self.out.append(_type_change(path, f"{side} bound {fmt(ob)} -> {fmt(nb)}", d))


def _attr_occurs(attr: Any) -> tuple[int, int | None]:
    return (1 if attr.use == "required" else 0, 0 if attr.use == "prohibited" else 1)


def _mul(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a * b


def _flatten(group: Any) -> tuple[dict[str, _Particle], list[str], list[Any], list[str]]:
    """Flatten a content model into child name -> effective occurrence.

    Children of a choice become optional (min 0); occurrences multiply through nested groups.
    The model kinds seen (sequence/choice/all, in walk order) are returned so a change of
    structure that this flattening cannot judge is reported rather than missed.
    """
    parts: dict[str, _Particle] = {}
    order: list[str] = []
    wild: list[Any] = []
    models: list[str] = []

    def walk(g: Any, gmin: int, gmax: int | None) -> None:
        if not isinstance(g, XsdGroup):
            return
        models.append(g.model)
        choice = g.model == "choice" and len(g) > 1
        for p in g:
            pmin = 0 if choice else gmin * p.min_occurs
            pmax = _mul(gmax, p.max_occurs)
            if isinstance(p, XsdGroup):
                walk(p, pmin, pmax)
            elif isinstance(p, XsdAnyElement):
                wild.append(p)
            elif isinstance(p, XsdElement):
                name = p.name
                if name in parts:  # the same element twice in one model: counts add up
                    q = parts[name]
                    q.min += pmin
                    q.max = None if q.max is None or pmax is None else q.max + pmax
                else:
                    parts[name] = _Particle(p, pmin, pmax)
                    order.append(name)

    if group is not None:
        walk(group, group.min_occurs, group.max_occurs)
    return parts, order, wild, models


def _wildcard_admits(wildcards: list[Any], name: str) -> bool:
    return any(w.process_contents in ("lax", "skip") and w.is_matching(name) for w in wildcards)


def _is_builtin(t: Any) -> bool:
    return isinstance(t, XsdAtomicBuiltin) or (
        isinstance(getattr(t, "name", None), str) and t.name.startswith(f"{{{XSD_NS}}}")
    )


def _simple_profile(st: Any) -> dict[str, Any]:
    """Effective constraints of a simple type: nearest built-in, facets, enumeration, patterns."""
    variety = "union" if st.is_union() else "list" if st.is_list() else "atomic"
    members = sorted(str(m.name) for m in getattr(st, "member_types", []) or [])
    facets: dict[str, Any] = {}
    patterns: list[str] = []
    enum: list[Any] | None = None
    lower: Bound | None = None
    upper: Bound | None = None
    t = st
    hops = 0
    while t is not None and not _is_builtin(t) and hops < 100:
        for tag, facet in (getattr(t, "facets", None) or {}).items():
            if tag is None:
                continue
            local = tag.split("}", 1)[-1]
            if local == "pattern":
                patterns.extend(str(r) for r in getattr(facet, "regexps", []))
            elif local == "enumeration":
                if enum is None:
                    enum = list(getattr(facet, "enumeration", []))
            elif local in ("minInclusive", "minExclusive"):
                if lower is None:
                    lower = (facet.value, local == "minExclusive")
            elif local in ("maxInclusive", "maxExclusive"):
                if upper is None:
                    upper = (facet.value, local == "maxExclusive")
            elif local not in facets and hasattr(facet, "value"):
                facets[local] = facet.value
        t = getattr(t, "base_type", None)
        hops += 1
    builtin = t
    chain: list[str] = []
    b = builtin
    while b is not None and hops < 200:
        if getattr(b, "name", None):
            chain.append(b.name)
        b = getattr(b, "base_type", None)
        hops += 1
    return {
        "variety": variety,
        "members": members,
        "builtin": getattr(builtin, "name", None),
        "chain": chain,
        "facets": facets,
        "patterns": sorted(set(patterns)),
        "enum": enum,
        "lower": lower,
        "upper": upper,
    }


# --------------------------------------------------------------------------------------------
# Checking a history
# --------------------------------------------------------------------------------------------


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
        schemas = [(v, _as_xmlschema(s, catalog)) for v, s in versions]
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
