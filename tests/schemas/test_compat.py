"""Compatibility levels for XSD and JSON Schema contract versions, table-driven.

Each row is one kind of change, as a pair of small inline schemas (v1 -> v2), with the verdict
expected for BACKWARD (v2 reads v1 data), FORWARD (v1 reads v2 data) and FULL. XSD content is
closed; JSON rows state their content model, because additionalProperties decides the verdict.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hub.schemas.compat import (
    Change,
    Level,
    Violation,
    check,
    diff_json_schema,
    diff_xsd,
)

OK, BREAKS = True, False


def xsd(children: str, attrs: str = "", tns: str = "urn:example:fallakte:1") -> bytes:
    return f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="{tns}"
        xmlns:t="{tns}" elementFormDefault="qualified">
      <xs:element name="meldung"><xs:complexType>
        <xs:sequence>{children}</xs:sequence>{attrs}
      </xs:complexType></xs:element>
    </xs:schema>""".encode()


def el(name: str, type_: str = "xs:string", occurs: str = "", body: str = "") -> str:
    if body:
        return f'<xs:element name="{name}" {occurs}>{body}</xs:element>'
    return f'<xs:element name="{name}" type="{type_}" {occurs}/>'


def restricted(base: str, facets: str) -> str:
    return f'<xs:simpleType><xs:restriction base="{base}">{facets}</xs:restriction></xs:simpleType>'


def enum(*values: str) -> str:
    return "".join(f'<xs:enumeration value="{v}"/>' for v in values)


AZ = el("az")  # Aktenzeichen, always there
FIXED = '<xs:attribute name="listVersionID" type="xs:string" fixed="%s"/>'


def obj(props: dict[str, Any], required: tuple[str, ...] = ("az",), closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": {"az": {"type": "string"}, **props}}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


@dataclass(frozen=True)
class Row:
    id: str
    fmt: str
    old: Any
    new: Any
    kind: str
    backward: bool
    forward: bool

    @property
    def full(self) -> bool:
        return self.backward and self.forward


ROWS = [
    # --- added ------------------------------------------------------------------------------
    Row("xsd-added-optional", "xsd", xsd(AZ), xsd(AZ + el("vermerk", occurs='minOccurs="0"')),
        "added_optional", OK, BREAKS),
    Row("json-closed-added-optional", "json", obj({}), obj({"vermerk": {"type": "string"}}),
        "added_optional", OK, BREAKS),
    # open model: old data may already carry "vermerk" with any value; old readers accept it
    Row("json-open-added-optional", "json", obj({}, closed=False),
        obj({"vermerk": {"type": "string"}}, closed=False), "added_optional", BREAKS, OK),
    Row("xsd-added-required", "xsd", xsd(AZ), xsd(AZ + el("vermerk")), "added_required", BREAKS, BREAKS),
    Row("json-closed-added-required", "json", obj({}),
        obj({"vermerk": {"type": "string"}}, required=("az", "vermerk")), "added_required", BREAKS, BREAKS),
    Row("json-open-added-required", "json", obj({}, closed=False),
        obj({"vermerk": {"type": "string"}}, required=("az", "vermerk"), closed=False),
        "added_required", BREAKS, OK),
    # --- removed ----------------------------------------------------------------------------
    Row("xsd-removed-optional", "xsd", xsd(AZ + el("vermerk", occurs='minOccurs="0"')), xsd(AZ),
        "removed_optional", BREAKS, OK),
    Row("json-closed-removed-optional", "json", obj({"vermerk": {"type": "string"}}), obj({}),
        "removed_optional", BREAKS, OK),
    Row("json-open-removed-optional", "json", obj({"vermerk": {"type": "string"}}, closed=False),
        obj({}, closed=False), "removed_optional", OK, BREAKS),
    Row("xsd-removed-required", "xsd", xsd(AZ + el("vermerk")), xsd(AZ), "removed_required", BREAKS, BREAKS),
    Row("json-closed-removed-required", "json",
        obj({"vermerk": {"type": "string"}}, required=("az", "vermerk")), obj({}),
        "removed_required", BREAKS, BREAKS),
    Row("json-open-removed-required", "json",
        obj({"vermerk": {"type": "string"}}, required=("az", "vermerk"), closed=False),
        obj({}, closed=False), "removed_required", OK, BREAKS),
    # --- type narrowed / widened ------------------------------------------------------------
    Row("xsd-string-to-maxlength", "xsd", xsd(AZ),
        xsd(el("az", body=restricted("xs:string", '<xs:maxLength value="20"/>'))), "type_narrowed", BREAKS, OK),
    Row("xsd-string-to-pattern", "xsd", xsd(AZ),
        xsd(el("az", body=restricted("xs:string", '<xs:pattern value="[0-9]{5}"/>'))), "type_narrowed", BREAKS, OK),
    Row("xsd-int-range-narrowed", "xsd",
        xsd(AZ + el("alter", body=restricted("xs:integer", '<xs:minInclusive value="0"/><xs:maxInclusive value="120"/>'))),
        xsd(AZ + el("alter", body=restricted("xs:integer", '<xs:minInclusive value="15"/><xs:maxInclusive value="67"/>'))),
        "type_narrowed", BREAKS, OK),
    Row("xsd-decimal-to-integer", "xsd", xsd(AZ + el("betrag", "xs:decimal")), xsd(AZ + el("betrag", "xs:integer")),
        "type_narrowed", BREAKS, OK),
    Row("xsd-maxlength-widened", "xsd",
        xsd(el("az", body=restricted("xs:string", '<xs:maxLength value="20"/>'))),
        xsd(el("az", body=restricted("xs:string", '<xs:maxLength value="40"/>'))), "type_widened", OK, BREAKS),
    Row("xsd-integer-to-decimal", "xsd", xsd(AZ + el("betrag", "xs:integer")), xsd(AZ + el("betrag", "xs:decimal")),
        "type_widened", OK, BREAKS),
    Row("xsd-string-to-date", "xsd", xsd(AZ + el("datum")), xsd(AZ + el("datum", "xs:date")),
        "type_changed", BREAKS, BREAKS),
    Row("json-string-to-maxlength", "json", obj({}), obj({}) | {"properties": {"az": {"type": "string", "maxLength": 20}}},
        "type_narrowed", BREAKS, OK),
    Row("json-string-to-pattern", "json", obj({}),
        obj({}) | {"properties": {"az": {"type": "string", "pattern": "^[0-9]{5}$"}}}, "type_narrowed", BREAKS, OK),
    Row("json-int-range-narrowed", "json", obj({"alter": {"type": "integer", "minimum": 0, "maximum": 120}}),
        obj({"alter": {"type": "integer", "minimum": 15, "maximum": 67}}), "type_narrowed", BREAKS, OK),
    Row("json-number-to-integer", "json", obj({"betrag": {"type": "number"}}), obj({"betrag": {"type": "integer"}}),
        "type_narrowed", BREAKS, OK),
    Row("json-maxlength-widened", "json", obj({"az": {"type": "string", "maxLength": 20}}),
        obj({"az": {"type": "string", "maxLength": 40}}), "type_widened", OK, BREAKS),
    Row("json-integer-to-number", "json", obj({"betrag": {"type": "integer"}}), obj({"betrag": {"type": "number"}}),
        "type_widened", OK, BREAKS),
    Row("json-string-to-integer", "json", obj({"plz": {"type": "string"}}), obj({"plz": {"type": "integer"}}),
        "type_changed", BREAKS, BREAKS),
    # --- enumerations -----------------------------------------------------------------------
    Row("xsd-enum-value-added", "xsd", xsd(AZ + el("status", body=restricted("xs:string", enum("offen", "erledigt")))),
        xsd(AZ + el("status", body=restricted("xs:string", enum("offen", "erledigt", "abgebrochen")))),
        "enum_value_added", OK, BREAKS),
    Row("xsd-enum-value-removed", "xsd", xsd(AZ + el("status", body=restricted("xs:string", enum("offen", "erledigt")))),
        xsd(AZ + el("status", body=restricted("xs:string", enum("offen")))), "enum_value_removed", BREAKS, OK),
    Row("json-enum-value-added", "json", obj({"status": {"enum": ["offen", "erledigt"]}}),
        obj({"status": {"enum": ["offen", "erledigt", "abgebrochen"]}}), "enum_value_added", OK, BREAKS),
    Row("json-enum-value-removed", "json", obj({"status": {"enum": ["offen", "erledigt"]}}),
        obj({"status": {"enum": ["offen"]}}), "enum_value_removed", BREAKS, OK),
    # --- occurrence -------------------------------------------------------------------------
    Row("xsd-minoccurs-tightened", "xsd", xsd(AZ + el("kind", occurs='minOccurs="0"')), xsd(AZ + el("kind")),
        "occurs_tightened", BREAKS, OK),
    Row("xsd-minoccurs-loosened", "xsd", xsd(AZ + el("kind")), xsd(AZ + el("kind", occurs='minOccurs="0"')),
        "occurs_loosened", OK, BREAKS),
    Row("xsd-maxoccurs-tightened", "xsd", xsd(AZ + el("kind", occurs='maxOccurs="unbounded"')),
        xsd(AZ + el("kind", occurs='maxOccurs="3"')), "occurs_tightened", BREAKS, OK),
    Row("xsd-maxoccurs-loosened", "xsd", xsd(AZ + el("kind")), xsd(AZ + el("kind", occurs='maxOccurs="unbounded"')),
        "occurs_loosened", OK, BREAKS),
    Row("json-became-required", "json", obj({"kind": {"type": "string"}}),
        obj({"kind": {"type": "string"}}, required=("az", "kind")), "occurs_tightened", BREAKS, OK),
    Row("json-no-longer-required", "json", obj({"kind": {"type": "string"}}, required=("az", "kind")),
        obj({"kind": {"type": "string"}}), "occurs_loosened", OK, BREAKS),
    Row("json-maxitems-tightened", "json", obj({"kinder": {"type": "array", "items": {"type": "string"}}}),
        obj({"kinder": {"type": "array", "items": {"type": "string"}, "maxItems": 3}}), "occurs_tightened", BREAKS, OK),
    Row("json-minitems-loosened", "json", obj({"kinder": {"type": "array", "minItems": 1}}),
        obj({"kinder": {"type": "array"}}), "occurs_loosened", OK, BREAKS),
    # --- namespace / identity ---------------------------------------------------------------
    Row("xsd-namespace-changed", "xsd", xsd(AZ), xsd(AZ, tns="urn:example:fallakte:2"),
        "namespace_changed", BREAKS, BREAKS),
    # JSON Schema has no namespaces: $id names the schema but does not change which documents are
    # valid, so it is reported and breaks nothing. A JSON contract that wants namespace-like
    # identity must put it in the data (e.g. a const "schema" property), which is then a type change.
    Row("json-id-changed", "json", obj({}) | {"$id": "urn:example:fallakte:1"},
        obj({}) | {"$id": "urn:example:fallakte:2"}, "id_changed", OK, OK),
    Row("json-identity-in-data-changed", "json", obj({"schema": {"const": "urn:example:fallakte:1"}}),
        obj({"schema": {"const": "urn:example:fallakte:2"}}), "enum_value_removed", BREAKS, BREAKS),
    # --- further kinds that matter for XÖV contracts ----------------------------------------
    Row("xsd-fixed-listversion-changed", "xsd", xsd(AZ, FIXED % "2"), xsd(AZ, FIXED % "3"),
        "fixed_value_changed", BREAKS, BREAKS),
    Row("xsd-order-changed", "xsd", xsd(AZ + el("vermerk")), xsd(el("vermerk") + AZ), "order_changed", BREAKS, BREAKS),
    Row("xsd-sequence-to-choice", "xsd", xsd(AZ + el("vermerk")),
        xsd(f"<xs:choice>{AZ}{el('vermerk')}</xs:choice>"), "type_changed", BREAKS, BREAKS),
    Row("json-content-closed", "json", obj({}, closed=False), obj({}), "type_narrowed", BREAKS, OK),
    Row("json-content-opened", "json", obj({}), obj({}, closed=False), "type_widened", OK, BREAKS),
    Row("xsd-unchanged", "xsd", xsd(AZ), xsd(AZ), "", OK, OK),
    Row("json-annotation-only", "json", obj({}), obj({}) | {"description": "Meldung, überarbeitet"}, "", OK, OK),
]


def _verdict(level: str, row: Row) -> tuple[bool, list[Violation]]:
    violations = check(level, [("1.0", row.old), ("1.1", row.new)], row.fmt)  # type: ignore[arg-type]
    return not violations, violations


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_change_kind_and_verdicts(row: Row) -> None:
    changes: list[Change] = (
        diff_xsd(row.old, row.new) if row.fmt == "xsd" else diff_json_schema(row.old, row.new)
    )
    kinds = [c.kind for c in changes]
    if row.kind:
        assert row.kind in kinds, f"{row.id}: expected a {row.kind!r} change, got {changes}"
    else:
        assert not any(c.breaks_backward or c.breaks_forward for c in changes), changes
    for level, expected in (("BACKWARD", row.backward), ("FORWARD", row.forward), ("FULL", row.full)):
        compatible, violations = _verdict(level, row)
        assert compatible == expected, (
            f"{row.id}: {level} expected {'compatible' if expected else 'a violation'}, got "
            + ("compatible" if compatible else "; ".join(v.message for v in violations))
            + f" (changes: {[str(c) for c in changes]})"
        )
        for v in violations:  # a violation names the pair, the level and what broke
            assert v.old_version == "1.0" and v.new_version == "1.1"
            assert "1.0" in v.message and "1.1" in v.message and v.change.kind in v.message
            assert v.change.path in v.message


def test_every_kind_is_covered_for_both_formats() -> None:
    """The table must exercise each kind for XSD and for JSON Schema (by design of the table)."""
    wanted = {"added_optional", "added_required", "removed_optional", "removed_required",
              "type_narrowed", "type_widened", "enum_value_added", "enum_value_removed",
              "occurs_tightened", "occurs_loosened"}
    for fmt in ("xsd", "json"):
        got = {r.kind for r in ROWS if r.fmt == fmt}
        assert wanted <= got, f"{fmt}: table lacks {wanted - got}"
    assert {"namespace_changed"} <= {r.kind for r in ROWS if r.fmt == "xsd"}
    assert {"id_changed"} <= {r.kind for r in ROWS if r.fmt == "json"}


def test_none_accepts_anything() -> None:
    assert check("NONE", [("1", xsd(AZ)), ("2", xsd(AZ, tns="urn:other"))], "xsd") == []


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="BACKWARDS"):
        check("BACKWARDS", [("1", {}), ("2", {})], "json")


# --- transitive levels -------------------------------------------------------------------------


def test_transitive_json_declared_only_writers() -> None:
    """v1 -> v2 and v2 -> v3 are each BACKWARD, v1 -> v3 is not.

    Under the "declared-only" writer assumption (writers emit only the properties their schema
    declares, as in Avro): v2 drops f, v3 re-adds f with another type. Each step is harmless,
    but v1 data ({"f": 5}) is not readable by v3.
    """
    v1 = obj({"f": {"type": "integer"}}, closed=False)
    v2 = obj({}, closed=False)
    v3 = obj({"f": {"type": "string"}}, closed=False)
    history = [("1.0", v1), ("2.0", v2), ("3.0", v3)]
    assert check("BACKWARD", history, "json", writers="declared-only") == []
    violations = check("BACKWARD_TRANSITIVE", history, "json", writers="declared-only")
    assert violations, "BACKWARD_TRANSITIVE must compare 3.0 with 1.0"
    assert {(v.old_version, v.new_version) for v in violations} == {("1.0", "3.0")}
    assert violations[0].change.path == "/properties/f"
    assert "integer" in violations[0].message and "string" in violations[0].message
    # Under the default "any-valid" reading, v2's open model already admits {"f": "x"} and
    # {"f": 5}, so re-adding f is caught pairwise: there, compatibility is set inclusion, which
    # is transitive, and the transitive level adds the older pair to the report.
    pairwise = check("BACKWARD", history, "json")
    assert {(v.old_version, v.new_version) for v in pairwise} == {("2.0", "3.0")}
    transitive = check("BACKWARD_TRANSITIVE", history, "json")
    assert {(v.old_version, v.new_version) for v in transitive} == {("1.0", "3.0"), ("2.0", "3.0")}


@pytest.mark.parametrize("fmt", ["xsd", "json"])
def test_transitive_levels_check_every_earlier_version(fmt: str) -> None:
    """A break reaches every earlier version that lacks the value: the transitive levels name
    each such pair, the plain levels only the predecessor."""
    if fmt == "xsd":
        v1 = xsd(AZ + el("status", body=restricted("xs:string", enum("offen", "erledigt", "ruht"))))
        v2 = xsd(AZ + el("status", body=restricted("xs:string", enum("offen", "erledigt"))))
        v3 = xsd(AZ + el("status", body=restricted("xs:string", enum("offen", "erledigt", "abgebrochen"))))
    else:
        v1 = obj({"status": {"enum": ["offen", "erledigt", "ruht"]}})
        v2 = obj({"status": {"enum": ["offen", "erledigt"]}})
        v3 = obj({"status": {"enum": ["offen", "erledigt", "abgebrochen"]}})
    history = [("1", v1), ("2", v2), ("3", v3)]
    # v3 adds "abgebrochen": v1 and v2 readers reject it.
    assert {(v.old_version, v.new_version) for v in check("FORWARD", history, fmt)} == {("2", "3")}
    assert {(v.old_version, v.new_version) for v in check("FORWARD_TRANSITIVE", history, fmt)} == {
        ("1", "3"), ("2", "3")}
    # FULL_TRANSITIVE also sees 1 -> 2 removing "ruht" and 1 -> 3 removing it.
    full = {(v.old_version, v.new_version, v.direction) for v in check("FULL_TRANSITIVE", history, fmt)}
    assert full == {("1", "2", "backward"), ("1", "3", "backward"), ("1", "3", "forward"),
                    ("2", "3", "forward")}


def test_level_enum_semantics() -> None:
    assert Level("FULL_TRANSITIVE").directions == ("backward", "forward")
    assert Level.BACKWARD_TRANSITIVE.transitive and not Level.BACKWARD.transitive


# --- a real standard -------------------------------------------------------------------------


def test_xwasser_codelist_version_bump_breaks_both_directions(xwasser_dir: Path, tmp_path: Path) -> None:
    """Bumping the fixed listVersionID of a code list (the drift in the invalid example) is
    caught on the real XWasser schemas, at the element that carries it."""
    std = tmp_path / "xwasser_1.0.1"
    shutil.copytree(xwasser_dir, std, ignore=shutil.ignore_patterns("examples"))
    baukasten = std / "xwasser-baukasten.xsd"
    text = baukasten.read_text(encoding="utf-8")
    start = text.index('<xs:complexType name="Code.ArtTrinkwasseranlageType">')
    anchor = text.index('name="listVersionID"', start)
    fixed = text.index('fixed="2"', anchor)
    baukasten.write_text(text[:fixed] + 'fixed="3"' + text[fixed + len('fixed="2"'):], encoding="utf-8")

    changes = diff_xsd(xwasser_dir / "xwasser.xsd", std / "xwasser.xsd", xwasser_dir / "catalog.xml")
    assert changes, "a codelist version bump must be detected"
    assert {c.kind for c in changes} == {"fixed_value_changed"}, changes
    assert any(c.path.endswith("xwas:artAnlage/@listVersionID") for c in changes), changes
    assert all(c.breaks_backward and c.breaks_forward for c in changes)


# --- edges the table does not show --------------------------------------------------------


def test_json_refs_and_recursion_are_followed() -> None:
    def tree(max_len: int) -> dict[str, Any]:
        return {
            "$defs": {"node": {"type": "object", "additionalProperties": False, "properties": {
                "name": {"type": "string", "maxLength": max_len},
                "kinder": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            }}},
            "$ref": "#/$defs/node",
        }

    assert diff_json_schema(tree(10), tree(10)) == []
    changes = diff_json_schema(tree(10), tree(5))
    assert [(c.kind, c.path) for c in changes] == [("type_narrowed", "/properties/name")]


def test_json_partially_open_model_compares_with_additional_properties_schema() -> None:
    old = {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}
    fits = {**old, "properties": {"vermerk": {"type": "string", "maxLength": 99}}}
    (change,) = diff_json_schema(old, fits)
    assert change.kind == "added_optional" and change.breaks_backward and not change.breaks_forward
    same = {**old, "properties": {"vermerk": {"type": "string"}}}
    (change,) = diff_json_schema(old, same)
    assert not (change.breaks_backward or change.breaks_forward), change


def test_xsd_lax_wildcard_admits_an_added_element() -> None:
    """An extension point (xs:any, lax) filled by a declared element: old readers still accept
    it (forward holds), but dropping the wildcard narrows what new readers take (backward)."""
    wildcard = '<xs:any namespace="##targetNamespace" processContents="lax" minOccurs="0"/>'
    old = xsd(AZ + wildcard)
    new = xsd(AZ + el("vermerk", occurs='minOccurs="0"'))
    changes = diff_xsd(old, new)
    added = [c for c in changes if c.kind == "added_optional"]
    assert added and not added[0].breaks_forward, changes
    assert check("FORWARD", [("1", old), ("2", new)], "xsd") == []
    assert check("BACKWARD", [("1", old), ("2", new)], "xsd")


def test_xsd_attribute_added_as_required() -> None:
    old = xsd(AZ)
    new = xsd(AZ, '<xs:attribute name="version" type="xs:string" use="required"/>')
    (change,) = diff_xsd(old, new)
    assert (change.kind, change.path) == ("added_required", "/t:meldung/@version")
    assert change.breaks_backward and change.breaks_forward


def test_xwasser_compared_with_itself_has_no_changes(xwasser_dir: Path) -> None:
    assert diff_xsd(xwasser_dir / "xwasser.xsd", xwasser_dir / "xwasser.xsd", xwasser_dir / "catalog.xml") == []
