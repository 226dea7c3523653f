"""The JSON Schema differ: walks two JSON Schemas side by side and reports each :class:`Change`.

Why a module of its own: JSON Schema's open content models make its verdicts differ from XSD's.
``additionalProperties`` decides them. With ``false`` (closed) a property the schema does not
declare is invalid, as in XSD. With it absent or ``true`` (open) an undeclared property may carry
*any* value, so adding a property breaks BACKWARD (old data may already carry that name with another
type) and removing one breaks FORWARD (new data may carry it with a value the old schema rejects).
With a schema as ``additionalProperties`` (partially open) the property's old and new schemas are
compared like any other type change. This is the "any valid document" reading (``writers=
"any-valid"``, the default), the one Confluent applies to JSON Schema.

``writers="declared-only"`` instead assumes writers only emit properties their schema declares
(Avro's reader/writer view, the tolerant-reader habit). Under it adding or removing an optional
property of an open model is harmless in the direction the open model covers.

Local ``$ref`` are followed; a replaced regex ``pattern``, changed ``anyOf``/``oneOf`` or tuple
items cannot be decided cheaply and are reported as breaking both ways. ``if/then/else`` is not
analysed beyond that conservative report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from hub.schemas.compat.changes import (
    ADDED_OPTIONAL,
    ADDED_REQUIRED,
    ID_CHANGED,
    OCCURS_LOOSENED,
    OCCURS_TIGHTENED,
    REMOVED_OPTIONAL,
    REMOVED_REQUIRED,
    TYPE_CHANGED,
    TYPE_NARROWED,
    TYPE_WIDENED,
    Change,
    Direction,
    Writers,
    type_change,
)
from hub.schemas.compat.constraints import (
    Bound,
    cmp_lower,
    cmp_patterns,
    cmp_upper,
    enum_changes,
    occurs_changes,
)

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
            self.out.append(type_change(where, "now accepts what was forbidden before", "widened"))
            return
        if n_false or o_true:
            self.out.append(type_change(where, "constraints added to an unconstrained value", "narrowed"))
            return
        assert isinstance(old, Mapping) and isinstance(new, Mapping)

        if not self._compare_types(old, new, where):
            return  # disjoint types: nothing else is comparable
        self.out.extend(enum_changes(where, _enum_of(old), _enum_of(new)))
        for kw, excl in _LOWER.items():
            self._bound(kw, _json_bound(old, kw, excl), _json_bound(new, kw, excl), cmp_lower, where)
        for kw, excl in _UPPER.items():
            self._bound(kw, _json_bound(old, kw, excl), _json_bound(new, kw, excl), cmp_upper, where)
        for kw in _COUNT_LOWER:
            self._bound(kw, _plain(old, kw), _plain(new, kw), cmp_lower, where)
        for kw in _COUNT_UPPER:
            self._bound(kw, _plain(old, kw), _plain(new, kw), cmp_upper, where)
        self._multiple_of(old, new, where)
        for kw in ("pattern", "format"):
            d = cmp_patterns([old[kw]] if kw in old else [], [new[kw]] if kw in new else [])
            if d:
                self.out.append(type_change(where, f"{kw} {old.get(kw)!r} -> {new.get(kw)!r}", d))
        if bool(old.get("uniqueItems")) != bool(new.get("uniqueItems")):
            d2: Direction = "narrowed" if new.get("uniqueItems") else "widened"
            self.out.append(type_change(where, f"uniqueItems -> {bool(new.get('uniqueItems'))}", d2))
        items_count = ((old.get("minItems", 0), old.get("maxItems")), (new.get("minItems", 0), new.get("maxItems")))
        self.out.extend(occurs_changes(where, *items_count, what="items"))
        self._items(old, new, path)
        self._object(old, new, path)
        for kw in sorted((set(old) | set(new)) - _HANDLED - _ANNOTATIONS):
            if old.get(kw) != new.get(kw):
                self.out.append(
                    type_change(
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
            self.out.append(type_change(where, desc, "narrowed"))
        elif oe < ne:
            self.out.append(type_change(where, desc, "widened"))
        else:
            self.out.append(type_change(where, desc, "changed"))
            return bool(oe & ne)
        return True

    def _bound(self, kw: str, ob: Bound | None, nb: Bound | None, cmp: Any, where: str) -> None:
        d = cmp(ob, nb)
        if d:
            self.out.append(
                type_change(where, f"{kw} {ob[0] if ob else None!r} -> {nb[0] if nb else None!r}", d)
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
        self.out.append(type_change(where, f"multipleOf {om!r} -> {nm!r}", d))

    def _items(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> None:
        oi, ni = old.get("items"), new.get("items")
        if isinstance(oi, list) or isinstance(ni, list) or "prefixItems" in old or "prefixItems" in new:
            if (oi, old.get("prefixItems")) != (ni, new.get("prefixItems")):
                self.out.append(
                    type_change(path or "/", "tuple items changed; not analysed", "changed")
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
            self.out.append(type_change(path or "/", "patternProperties changed; not analysed", "changed"))
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
