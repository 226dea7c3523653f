"""Hardened XML parsing: the only way partner XML enters the hub.

No DTD is loaded, no entity is expanded, nothing is fetched from the network, and a document that
carries a DOCTYPE at all is refused: a legitimate contract message never needs one, while DTDs are the
vehicle for XXE and billion-laughs attacks. Size is capped before parsing, by the caller; depth by
libxml2 (256 levels: huge_tree stays off), and a partner is told so in plain words, not libxml2's
advice to set a parser option.

Comments and processing instructions are dropped while parsing: text split by one
(`<wochenstunden>2<!-- -->5.0</wochenstunden>`) is then one text node, so the XSD and the adapter see
the same value ("25.0"); otherwise the schema validated the whole text while `.text` read only "2".
Line numbers of the elements are those of the original bytes, which the caller keeps as evidence.
"""

from __future__ import annotations

import re

from lxml import etree

from hub.findings import Finding, Refusal


def _parser() -> etree.XMLParser:
    # lxml parsers are not thread-safe; one per thread is cheap and safe.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse(data: bytes) -> etree._Element:
    """Parse partner XML or raise a Refusal with located findings."""
    # Fast refusal for the common spelling; the docinfo check after parsing catches every other
    # encoding (UTF-16 and the like), and entities are never expanded in between.
    if b"<!DOCTYPE" in data:
        # refuse before libxml2 sees it: the construct is the attack, whatever it declares
        raise Refusal(
            "forbidden-construct",
            "XML with a DOCTYPE or entity declaration is not accepted",
            [Finding("DOCTYPE and ENTITY declarations are not allowed", line=_line_of(data, b"<!"))],
        )
    parser = _parser()
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        # parser.error_log, not exc.error_log: the latter is thread-global and may still hold errors
        # of an earlier schema validation in this thread
        findings = [
            Finding(_plain(e.message), line=e.line or None, column=e.column or None) for e in parser.error_log
        ] or [Finding(_plain(str(exc)), line=exc.lineno, column=exc.offset)]
        message = str(exc)
        depth = _TOO_DEEP.search(message) or next(filter(None, (_TOO_DEEP.search(e.message) for e in parser.error_log)), None)
        if depth is not None:
            raise _too_deep(int(depth.group(1)), findings[0]) from None
        if "encoding" in message.lower() or "invalid character" in message.lower():
            raise Refusal("bad-encoding", "The XML is not well-formed in its declared encoding", findings) from None
        raise Refusal("malformed", "The XML is not well-formed", findings) from None
    except ValueError as exc:  # e.g. unicode strings with encoding declaration
        raise Refusal("malformed", "The XML could not be read", [Finding(str(exc))]) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise Refusal("forbidden-construct", "XML with a DOCTYPE is not accepted", [Finding("DOCTYPE not allowed", line=1)])
    return root


#: libxml2's refusal of deep nesting (without XML_PARSE_HUGE, which stays off: the limit guards the
#: parser's stack and every walk over the tree); the number is libxml2's limit
_TOO_DEEP = re.compile(r"Excessive depth in document: (\d+)")
#: libxml2's advice to the caller (", use XML_PARSE_HUGE option"): a parser option of the hub's that
#: a partner cannot set, and that the hub keeps off on purpose
_HUGE_HINT = re.compile(r"[,:;]?\s*use XML_PARSE_HUGE option", re.IGNORECASE)


def _plain(message: str) -> str:
    """A libxml2 message as a partner may read it: one line, without advice about parser options."""
    return " ".join(_HUGE_HINT.sub("", message).split())


def _too_deep(limit: int, where: Finding) -> Refusal:
    """The refusal of XML that nests elements more than `limit` levels deep (the contracts need few)."""
    return Refusal(
        "malformed",
        f"The XML is nested more than {limit} levels deep",
        [Finding(f"elements nest more than the allowed {limit} levels", line=where.line, column=where.column)],
    )


def _line_of(data: bytes, needle: bytes) -> int:
    pos = data.find(needle)
    return data.count(b"\n", 0, max(pos, 0)) + 1
