"""Offline onboarding of XWasser 1.0.0: catalog resolution, network refusal, complete findings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import xmlschema
from lxml import etree

from hub.schemas.catalog import (
    Catalog,
    CatalogResolver,
    Finding,
    NetworkAccessRefused,
    compile_xsd,
    hardened_parser,
    load_oasis_catalog,
    validate_xml,
    xmlschema_findings,
    xmlschema_schema,
)

XMLDSIG_URL = "https://www.w3.org/TR/xmldsig-core/xmldsig-core-schema.xsd"
XOEV_CODE_URL = "http://xoev.de/schemata/code/1_0/xoev-code.xsd"
CAT_NS = "urn:oasis:names:tc:entity:xmlns:xml:catalog"


@pytest.fixture(scope="module")
def xw(xwasser_dir: Path) -> tuple[etree.XMLSchema, xmlschema.XMLSchema]:
    catalog = load_oasis_catalog(xwasser_dir / "catalog.xml")
    return (
        compile_xsd(xwasser_dir / "xwasser.xsd", catalog),
        xmlschema_schema(xwasser_dir / "xwasser.xsd", catalog),
    )


def _write_catalog(path: Path, entries: dict[str, Path]) -> Path:
    """Write a catalog whose targets are relative to the catalog file, as in a real standard."""
    lines = [f'<catalog xmlns="{CAT_NS}">']
    for url, target in entries.items():
        rel = os.path.relpath(target, path.parent)
        lines.append(f'  <uri name="{url}" uri="{rel}"/>')
    lines.append("</catalog>")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# --- catalog ---------------------------------------------------------------------------------


def test_catalog_maps_every_import_to_a_cached_file(xwasser_dir: Path) -> None:
    catalog = load_oasis_catalog(xwasser_dir / "catalog.xml")
    assert len(catalog) == 4
    assert catalog[XMLDSIG_URL] == (xwasser_dir / "remote" / "xmldsig-core-schema.xsd").resolve()
    for url, target in catalog.items():
        assert target.is_file(), f"catalog entry {url} points to missing {target}"


def test_catalog_entry_kinds_xml_base_and_next_catalog(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "next.xml").write_text(
        f'<catalog xmlns="{CAT_NS}"><uri name="urn:x:next" uri="n.xsd"/>'
        f'<uri name="urn:x:a" uri="shadowed.xsd"/></catalog>'
    )
    cat_file = tmp_path / "catalog.xml"
    cat_file.write_text(
        f"""<catalog xmlns="{CAT_NS}">
          <uri name="urn:x:a" uri="a.xsd"/>
          <system systemId="http://example.org/s.xsd" uri="cache/s.xsd"/>
          <rewriteURI uriStartString="http://example.org/schemas/" rewritePrefix="cache/schemas/"/>
          <rewriteURI uriStartString="http://example.org/schemas/deep/" rewritePrefix="deep/"/>
          <rewriteSystem systemIdStartString="https://example.net/" rewritePrefix="net/"/>
          <group xml:base="grouped/"><uri name="urn:x:g" uri="g.xsd"/></group>
          <nextCatalog catalog="sub/next.xml"/>
        </catalog>"""
    )
    cat = load_oasis_catalog(cat_file)
    assert isinstance(cat, Catalog)
    assert cat.lookup("urn:x:a") == tmp_path / "a.xsd"  # first catalog wins over nextCatalog
    assert cat.lookup("http://example.org/s.xsd") == tmp_path / "cache" / "s.xsd"
    assert cat.lookup("http://example.org/schemas/x/y.xsd") == tmp_path / "cache/schemas/x/y.xsd"
    # longest rewrite prefix wins
    assert cat.lookup("http://example.org/schemas/deep/z.xsd") == tmp_path / "deep" / "z.xsd"
    assert cat.lookup("https://example.net/t.xsd") == tmp_path / "net" / "t.xsd"
    assert cat.lookup("urn:x:g") == tmp_path / "grouped" / "g.xsd"
    assert cat.lookup("urn:x:next") == tmp_path / "sub" / "n.xsd"
    assert cat.lookup("http://example.com/unmapped.xsd") is None
    assert cat.rewrite_prefixes == {
        "http://example.org/schemas/",
        "http://example.org/schemas/deep/",
        "https://example.net/",
    }


# --- compile: imports only through the catalog ---------------------------------------------


def test_resolver_resolves_all_four_remote_imports(xwasser_dir: Path) -> None:
    resolver = CatalogResolver(load_oasis_catalog(xwasser_dir / "catalog.xml"))
    parser = hardened_parser()
    parser.resolvers.add(resolver)
    etree.XMLSchema(etree.parse(str(xwasser_dir / "xwasser.xsd"), parser))
    assert set(resolver.resolved) == set(load_oasis_catalog(xwasser_dir / "catalog.xml"))
    assert resolver.refused == []


def test_relocated_cache_is_found_only_through_the_catalog(xwasser_dir: Path, tmp_path: Path) -> None:
    """Copy the standard without remote/; the imports resolve only if the catalog is honoured."""
    std = tmp_path / "std"
    shutil.copytree(xwasser_dir, std, ignore=shutil.ignore_patterns("remote", "examples"))
    cache = tmp_path / "elsewhere" / "vendor-cache"
    shutil.copytree(xwasser_dir / "remote", cache)
    original = load_oasis_catalog(xwasser_dir / "catalog.xml")
    cat = _write_catalog(
        tmp_path / "my-catalog.xml", {url: cache / p.name for url, p in original.items()}
    )
    schema = compile_xsd(std / "xwasser.xsd", cat)
    ok = (xwasser_dir / "examples" / "valid" / "administration_receipt.xml").read_bytes()
    assert validate_xml(schema, ok) == []
    assert xmlschema_schema(std / "xwasser.xsd", cat).target_namespace.endswith("V1_0_0")


@pytest.mark.parametrize("build", [compile_xsd, xmlschema_schema], ids=["lxml", "xmlschema"])
def test_missing_mapping_is_refused_naming_the_url(
    build: object, xwasser_dir: Path, tmp_path: Path
) -> None:
    original = load_oasis_catalog(xwasser_dir / "catalog.xml")
    partial = {u: p for u, p in original.items() if u != XMLDSIG_URL}
    cat = _write_catalog(tmp_path / "catalog.xml", partial)
    with pytest.raises(NetworkAccessRefused) as exc:
        build(xwasser_dir / "xwasser.xsd", cat)  # type: ignore[operator]
    assert exc.value.url == XMLDSIG_URL
    assert XMLDSIG_URL in str(exc.value)


@pytest.mark.parametrize("build", [compile_xsd, xmlschema_schema], ids=["lxml", "xmlschema"])
def test_no_catalog_refuses_the_first_remote_import(build: object, xwasser_dir: Path) -> None:
    with pytest.raises(NetworkAccessRefused) as exc:
        build(xwasser_dir / "xwasser.xsd", None)  # type: ignore[operator]
    assert exc.value.url.startswith(("http://", "https://"))
    assert exc.value.url in str(exc.value)


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["administration_receipt.xml", "olb_report_minimal.xml", "quality_report_minimal.xml"]
)
@pytest.mark.parametrize("complete", [False, True], ids=["lxml", "lxml+xmlschema"])
def test_valid_examples_have_no_findings(
    xw: tuple[etree.XMLSchema, xmlschema.XMLSchema], xwasser_dir: Path, name: str, complete: bool
) -> None:
    schema, reporter = xw
    data = (xwasser_dir / "examples" / "valid" / name).read_bytes()
    assert validate_xml(schema, data, reporter=reporter if complete else None) == []


def test_every_valid_example_is_covered(xwasser_dir: Path) -> None:
    """Guard the parametrisation above: a new fixture file must not go untested."""
    names = {p.name for p in (xwasser_dir / "examples" / "valid").glob("*.xml")}
    assert names == {
        "administration_receipt.xml",
        "olb_report_minimal.xml",
        "quality_report_minimal.xml",
    }


@pytest.mark.parametrize("complete", [False, True], ids=["lxml", "lxml+xmlschema"])
def test_invalid_example_reports_all_three_findings_with_lines(
    xw: tuple[etree.XMLSchema, xmlschema.XMLSchema], xwasser_dir: Path, complete: bool
) -> None:
    schema, reporter = xw
    data = (xwasser_dir / "examples" / "invalid" / "monitoring_plan_minimal.xml").read_bytes()
    findings = validate_xml(schema, data, reporter=reporter if complete else None)
    assert [f.line for f in findings] == [74, 101, 119], findings
    order, art, kategorie = findings
    assert "probennahmestelleKategorie" in order.message
    assert order.path and order.path.endswith("terminplan/xwas:probennahmestelleKategorie")
    for f, element, found, fixed in ((art, "artAnlage", "1", "2"), (kategorie, "kategorieProbennahmestelle", "2", "3")):
        assert element in f.message and "listVersionID" in f.message, f
        assert f"'{found}'" in f.message and f"'{fixed}'" in f.message, f
        assert f.path and f.path.endswith(element)
    assert all(isinstance(f, Finding) for f in findings)


def test_reporter_finds_what_libxml2_skips_after_the_first_error() -> None:
    """libxml2 stops checking an element's children after a content-model error."""
    xsd = b"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
      <xs:element name="r"><xs:complexType><xs:sequence>
        <xs:element name="a" type="xs:int"/>
        <xs:element name="b" type="xs:int"/>
        <xs:element name="c" maxOccurs="unbounded"><xs:complexType><xs:sequence>
          <xs:element name="d" type="xs:int"/></xs:sequence></xs:complexType></xs:element>
      </xs:sequence></xs:complexType></xs:element></xs:schema>"""
    doc = b"<r>\n<b>x</b>\n<a>y</a>\n<c><d>z</d></c>\n<c><d>w</d><e/></c>\n</r>"
    lxml_only = validate_xml(etree.XMLSchema(etree.fromstring(xsd)), doc)
    complete = validate_xml(
        etree.XMLSchema(etree.fromstring(xsd)), doc, reporter=xmlschema_schema(xsd)
    )
    assert len(lxml_only) == 1
    assert sorted({f.line for f in complete}) == [2, 3, 4, 5]
    assert any("'z'" in f.message for f in complete)
    assert any("'e'" in f.message and f.line == 5 for f in complete)


def test_dangling_idref_is_not_reported(
    xw: tuple[etree.XMLSchema, xmlschema.XMLSchema], xwasser_dir: Path
) -> None:
    """xmlschema flags dangling IDREFs that libxml2 (the verdict) accepts; the fixture has them."""
    _, reporter = xw
    data = (xwasser_dir / "examples" / "valid" / "quality_report_minimal.xml")
    raw = [e.reason for e in reporter.iter_errors(str(data))]
    assert raw and all(r and r.startswith("IDREF") for r in raw)  # premise of the exclusion
    tree = etree.parse(str(data), hardened_parser())
    assert xmlschema_findings(reporter, tree) == []


# --- hardened parse ------------------------------------------------------------------------


def test_doctype_is_refused_and_entities_are_not_expanded(
    xw: tuple[etree.XMLSchema, xmlschema.XMLSchema], tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = (
        f'<?xml version="1.0"?>\n<!DOCTYPE r [\n<!ENTITY x SYSTEM "{secret.as_uri()}">\n'
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n<r>&x;&b;</r>'
    ).encode()
    findings = validate_xml(xw[0], xxe)
    assert len(findings) == 1
    assert findings[0].line == 2 and "DOCTYPE" in findings[0].message
    assert "TOP-SECRET" not in repr(findings)


def test_malformed_xml_is_a_positioned_finding(
    xw: tuple[etree.XMLSchema, xmlschema.XMLSchema],
) -> None:
    findings = validate_xml(xw[0], b"<r>\n  <a>\n</r>")
    assert findings and findings[0].line == 3
    assert "mismatch" in findings[0].message
