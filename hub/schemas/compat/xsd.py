"""The XSD differ: introspects two XSD versions with xmlschema and reports each :class:`Change`.

Why a module of its own: XSD content models are *closed*, and that gives XSD its own verdicts. An
element the schema does not declare is invalid (unless a lax/skip wildcard admits it, which is
honoured), so adding an optional element breaks FORWARD (old readers reject it) and removing one
breaks BACKWARD (old data carrying it is rejected). The walk also needs xmlschema's object model,
which the JSON Schema differ has no business importing.

A changed union, or a sequence turned into a choice, cannot be decided cheaply and is reported as
breaking both ways. Not analysed: identity constraints (key/keyref), ``xsi:type`` substitution,
substitution groups, attribute wildcards; differences there are reported conservatively only where
they surface as one of the change kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xmlschema
from xmlschema.validators import (
    XsdAnyElement,
    XsdAtomicBuiltin,
    XsdElement,
    XsdGroup,
)

from hub.schemas.catalog import Catalog, xmlschema_schema
from hub.schemas.compat.changes import (
    ADDED_OPTIONAL,
    ADDED_REQUIRED,
    FIXED_VALUE_CHANGED,
    NAMESPACE_CHANGED,
    ORDER_CHANGED,
    REMOVED_OPTIONAL,
    REMOVED_REQUIRED,
    Change,
    Direction,
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

XSD_NS = "http://www.w3.org/2001/XMLSchema"


XsdSource = Path | str | bytes | xmlschema.XMLSchema


def as_xmlschema(src: XsdSource, catalog: Catalog | Path | str | None) -> xmlschema.XMLSchema:
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
    os_, ns_ = as_xmlschema(old, catalog), as_xmlschema(new, catalog)
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
            self.out.append(type_change(path, f"nillable {old.nillable} -> {new.nillable}", d))
        self._fixed(path, old.fixed, new.fixed)
        self._type(old.type, new.type, path)

    def _fixed(self, path: str, old: Any, new: Any) -> None:
        if old == new:
            return
        if old is None:
            self.out.append(type_change(path, f"value fixed to {new!r}", "narrowed"))
        elif new is None:
            self.out.append(type_change(path, f"fixed value {old!r} lifted", "widened"))
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
                self.out.append(type_change(path, "simple type <-> complex type", "changed"))
                return
        self._attributes(old, new, path)
        o_simple = old.content if old.is_complex() and old.has_simple_content() else old if old.is_simple() else None
        n_simple = new.content if new.is_complex() and new.has_simple_content() else new if new.is_simple() else None
        if o_simple is not None and n_simple is not None:
            self._simple(o_simple, n_simple, path)
            return
        if (o_simple is None) != (n_simple is None):
            self.out.append(type_change(path, "simple content <-> element content", "changed"))
            return
        if old.mixed != new.mixed:
            self.out.append(type_change(path, f"mixed {old.mixed} -> {new.mixed}", "widened" if new.mixed else "narrowed"))
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
                self.out.extend(occurs_changes(apath, _attr_occurs(o), _attr_occurs(attr), "use"))
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
            self.out.append(type_change(path, f"content model groups {o_models} -> {n_models}; "
                                         "not analysed, assumed to break both ways", "changed"))
        for name, p in n_parts.items():
            cpath = f"{path}/{self._name(name)}"
            if name in o_parts:
                o = o_parts[name]
                self.out.extend(occurs_changes(cpath, (o.min, o.max), (p.min, p.max)))
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
            self.out.append(type_change(path, f"element wildcards {len(o_wild)} -> {len(n_wild)}", d))

    def _simple(self, old: Any, new: Any, path: str) -> None:
        op, np_ = _simple_profile(old), _simple_profile(new)
        if op["variety"] != np_["variety"]:
            self.out.append(type_change(path, f"{op['variety']} type -> {np_['variety']} type", "changed"))
            return
        if op["variety"] == "union":
            if op["members"] != np_["members"]:
                self.out.append(type_change(path, f"union members {op['members']} -> {np_['members']}; "
                                             "not analysed", "changed"))
            return
        if op["variety"] == "list" and old.item_type is not None and new.item_type is not None:
            self._simple(old.item_type, new.item_type, f"{path} (list item)")
        ob, nb = op["builtin"], np_["builtin"]
        if ob != nb:
            oc, nc = op["chain"], np_["chain"]
            desc = f"base type {self._name(ob)} -> {self._name(nb)}"
            if ob in nc:
                self.out.append(type_change(path, desc, "narrowed"))
            elif nb in oc:
                self.out.append(type_change(path, desc, "widened"))
            else:
                self.out.append(type_change(path, desc, "changed"))
                return
        self.out.extend(enum_changes(path, op["enum"], np_["enum"]))
        self._facet_bound(path, "lower", op["lower"], np_["lower"], cmp_lower)
        self._facet_bound(path, "upper", op["upper"], np_["upper"], cmp_upper)
        for facet, cmp in (("minLength", cmp_lower), ("maxLength", cmp_upper),
                           ("totalDigits", cmp_upper), ("fractionDigits", cmp_upper)):
            ov, nv = op["facets"].get(facet), np_["facets"].get(facet)
            d = cmp(None if ov is None else (ov, False), None if nv is None else (nv, False))
            if d:
                self.out.append(type_change(path, f"{facet} {ov!r} -> {nv!r}", d))
        ol, nl = op["facets"].get("length"), np_["facets"].get("length")
        if ol != nl:
            d2: Direction = "narrowed" if ol is None else "widened" if nl is None else "changed"
            self.out.append(type_change(path, f"length {ol!r} -> {nl!r}", d2))
        ops, nps = op["patterns"], np_["patterns"]
        d3 = cmp_patterns(ops, nps)
        if d3:
            self.out.append(type_change(path, f"patterns {ops} -> {nps}", d3))

    def _facet_bound(self, path: str, side: str, ob: Bound | None, nb: Bound | None, cmp: Any) -> None:
        d = cmp(ob, nb)
        if d:
            fmt = lambda b: "none" if b is None else f"{'>' if side == 'lower' else '<'}{'' if b[1] else '='} {b[0]}"  # noqa: E731
            self.out.append(type_change(path, f"{side} bound {fmt(ob)} -> {fmt(nb)}", d))


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
