"""The hardened parser refuses DTDs and entities in every spelling and never touches the network."""

from __future__ import annotations

import pytest

from hub.schemas import safe_xml
from hub.findings import Refusal


@pytest.mark.parametrize(
    "doc",
    [
        b'<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>',
        b'<!DOCTYPE a SYSTEM "http://127.0.0.1:9/evil.dtd"><a/>',
        b'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x">%p;]><a/>',
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>'.encode("utf-16"),
    ],
    ids=["xxe-file", "external-dtd", "parameter-entity", "utf16-doctype"],
)
def test_doctype_is_refused(doc: bytes) -> None:
    with pytest.raises(Refusal) as exc:
        safe_xml.parse(doc)
    assert exc.value.kind == "forbidden-construct" and exc.value.status == 400


def test_malformed_xml_is_located() -> None:
    with pytest.raises(Refusal) as exc:
        safe_xml.parse(b"<a>\n<b></a>")
    assert exc.value.kind == "malformed"
    assert exc.value.findings and exc.value.findings[0].line == 2


def test_wrong_declared_encoding_is_refused() -> None:
    with pytest.raises(Refusal) as exc:
        safe_xml.parse('<?xml version="1.0" encoding="UTF-8"?><a>Müller</a>'.encode("latin-1"))
    assert exc.value.status == 400


def test_iso_8859_15_declared_is_read() -> None:
    root = safe_xml.parse('<?xml version="1.0" encoding="ISO-8859-15"?><a>Müller €</a>'.encode("iso-8859-15"))
    assert root.text == "Müller €"


@pytest.mark.parametrize("splitter", [b"<!-- a comment -->", b"<?pi data?>"], ids=["comment", "processing-instruction"])
def test_text_split_by_a_comment_or_processing_instruction_is_one_value(splitter: bytes) -> None:
    """The XSD sees "25.0" in `2<!-- -->5.0`; the hub must read the same value, not "2"."""
    root = safe_xml.parse(b"<a><b>2" + splitter + b"5.0</b></a>")
    assert root[0].text == "25.0", f"the value was cut at the {splitter!r}: {root[0].text!r}"
    assert len(root[0]) == 0, "no comment or processing instruction node may remain"


def test_lines_of_elements_after_a_comment_are_those_of_the_original_bytes() -> None:
    root = safe_xml.parse(b"<a>\n<!-- one\ntwo\nthree -->\n<b>x</b><?pi\n?>\n<c/></a>")
    elements = [(e.tag, e.sourceline) for e in root if isinstance(e.tag, str)]
    assert elements == [("b", 5), ("c", 7)], "findings would point at the wrong line"


@pytest.mark.parametrize("depth", [300, 100_000])
def test_xml_nested_too_deep_is_refused_in_plain_words_naming_the_limit(depth: int) -> None:
    """libxml2 says "Excessive depth in document: 256, use XML_PARSE_HUGE option": a partner cannot
    set a parser option of the hub's, and the hub keeps refusing such documents (no huge_tree)."""
    with pytest.raises(Refusal) as exc:
        safe_xml.parse(b"<a>" * depth + b"</a>" * depth)
    said = [exc.value.detail, exc.value.one_line(), *(f.message for f in exc.value.findings)]
    assert exc.value.kind == "malformed" and exc.value.status == 400, exc.value
    assert not any("XML_PARSE" in s or "option" in s for s in said), f"a parser option of the hub's reached the partner: {said}"
    assert "256 levels" in exc.value.detail and "nested" in exc.value.detail, f"the answer must say the document nests too deep and name the limit: {said}"
    assert exc.value.findings and exc.value.findings[0].line == 1, exc.value.findings


def test_xml_nested_to_the_limit_is_still_read() -> None:
    assert safe_xml.parse(b"<a>" * 255 + b"</a>" * 255) is not None
