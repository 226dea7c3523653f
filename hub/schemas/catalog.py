"""Offline onboarding of XSD contracts (XÖV standards and our own) and hardened XML validation.

Why this module exists: XÖV standards such as XWasser import their base schemas
(xoev-code, the G2G base message, DIN 91379 data types, xmldsig) by *absolute URL*. A hub that
validates partner messages must never fetch schemas from the network at run time: the remote
copy can change, disappear or be tampered with, and a validator that phones home is an
availability and data-protection problem. The standard ships (or we cache) the imported files
and an OASIS XML catalog maps each URL to its cached copy. Everything here resolves imports
*only* through that catalog and refuses every other network URL with an error naming it.

Two engines, two jobs (see architecture.md, "Contracts are the product"):

* lxml/libxml2 (:func:`compile_xsd`) is the hot validation path and gives the verdict.
* xmlschema (:func:`xmlschema_schema`) is used for introspection (compatibility checks, field
  tables) and as the *complete* error reporter: libxml2 stops checking the rest of an element's
  children after the first content-model error, so a message with several problems in one
  subtree would otherwise be rejected with only the first one named. See :func:`validate_xml`.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Mapping
from xml.etree import ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xmlschema
from lxml import etree

from hub.findings import clock

__all__ = [
    "Catalog",
    "CatalogResolver",
    "Finding",
    "NetworkAccessRefused",
    "SchemaLoadError",
    "compile_xsd",
    "hardened_parser",
    "load_oasis_catalog",
    "parse_xml",
    "validate_xml",
    "iter_xmlschema_findings",
    "xmlschema_findings",
    "xmlschema_schema",
]

OASIS_CATALOG_NS = "urn:oasis:names:tc:entity:xmlns:xml:catalog"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"

# Schemes that would make a loader open a connection. Anything with a scheme that is not
# ``file`` is treated as remote: an unknown scheme is not something we want libxml2 to try.
_LOCAL_SCHEMES = frozenset({"", "file"})


class SchemaLoadError(Exception):
    """A schema (or catalog) could not be loaded or compiled."""


class NetworkAccessRefused(SchemaLoadError):
    """A schema referenced a network URL that the catalog does not map to a local file.

    Raised instead of fetching: the fix is to cache the file and add a catalog entry, never to
    let the validator go online.
    """

    def __init__(self, url: str, catalog: Path | None = None) -> None:
        self.url = url
        self.catalog = catalog
        where = f"catalog {catalog}" if catalog else "no catalog given"
        super().__init__(
            f"refused to fetch {url!r} from the network ({where} has no mapping for it); "
            f"cache the file and add <uri name={url!r} uri=\"...\"/> to the catalog"
        )


@dataclass(frozen=True)
class Finding:
    """One validation problem, positioned so a partner can find it in what they sent.

    ``path`` is an XPath for XML and a JSON pointer for JSON; ``line``/``column`` are 1-based
    source positions when the engine knows them (libxml2 does not report columns for schema
    validity errors, so those carry ``column=None`` rather than a misleading 0).
    """

    line: int | None
    column: int | None
    path: str | None
    message: str


# --------------------------------------------------------------------------------------------
# OASIS catalog
# --------------------------------------------------------------------------------------------


class Catalog(dict[str, Path]):
    """Mapping of catalog keys to local files, as returned by :func:`load_oasis_catalog`.

    Exact entries (``uri``, ``system``) map a URL to a file. Prefix entries (``rewriteURI``,
    ``rewriteSystem``) map a URL prefix to a local directory (or path prefix); their keys are
    listed in :attr:`rewrite_prefixes`. Use :meth:`lookup` rather than ``[]`` to resolve a URL,
    because it applies the OASIS rule that an exact match wins over a rewrite and the longest
    rewrite prefix wins over shorter ones.
    """

    def __init__(
        self,
        entries: Mapping[str, Path] | None = None,
        rewrites: Mapping[str, str] | None = None,
        source: Path | None = None,
    ) -> None:
        """``entries``: exact URL -> file; ``rewrites``: URL prefix -> local path prefix (str,
        because a prefix like ``cache/`` must keep its trailing slash, which ``Path`` drops)."""
        rewrites = dict(rewrites or {})
        super().__init__({**{k: Path(v) for k, v in rewrites.items()}, **(entries or {})})
        self._rewrites = {k: v for k, v in rewrites.items() if k not in (entries or {})}
        self.rewrite_prefixes: frozenset[str] = frozenset(self._rewrites)
        self.source = source

    def lookup(self, url: str) -> Path | None:
        """Return the local file for ``url`` or ``None`` if the catalog does not cover it."""
        if url in self and url not in self.rewrite_prefixes:
            return self[url]
        best = max(
            (p for p in self.rewrite_prefixes if url.startswith(p)), key=len, default=None
        )
        if best is None:
            return None
        return Path(self._rewrites[best] + urllib.parse.unquote(url[len(best):]))


def _to_local_path(ref: str, base_url: str, catalog_path: Path) -> str:
    """Resolve a catalog target relative to its (xml:base-aware) base; must be a local file."""
    joined = urllib.parse.urljoin(base_url, ref)
    parsed = urllib.parse.urlparse(joined)
    if parsed.scheme not in _LOCAL_SCHEMES:
        raise SchemaLoadError(
            f"catalog {catalog_path} maps to non-local target {joined!r}; "
            "catalog targets must be cached local files"
        )
    path = urllib.parse.unquote(parsed.path)
    # Keep a trailing slash: rewrite targets are prefixes, Path() would drop it.
    resolved = str(Path(path).resolve())
    return resolved + "/" if path.endswith("/") else resolved


def load_oasis_catalog(path: Path | str) -> Catalog:
    """Read an OASIS XML catalog (``uri``, ``system``, ``rewriteURI``, ``rewriteSystem``).

    Targets are resolved relative to the catalog file (honouring ``xml:base``), so a standard's
    directory can be moved as a whole. ``group`` elements are descended into, ``nextCatalog``
    is followed (entries of the first catalog win, as in OASIS lookup order). Public-id
    entries and delegation are ignored: schema imports are resolved by system id / URI only.
    """
    return _load_catalog(Path(path).resolve(), seen=set())


def _load_catalog(path: Path, seen: set[Path]) -> Catalog:
    if path in seen:
        return Catalog(source=path)
    seen.add(path)
    try:
        tree = etree.parse(str(path), hardened_parser())
    except (OSError, etree.XMLSyntaxError) as err:
        raise SchemaLoadError(f"cannot read catalog {path}: {err}") from err
    root = tree.getroot()
    if root.tag != f"{{{OASIS_CATALOG_NS}}}catalog":
        raise SchemaLoadError(f"{path} is not an OASIS catalog (root element {root.tag!r})")

    entries: dict[str, Path] = {}
    rewrites: dict[str, str] = {}
    chained: list[Catalog] = []
    base_url = path.as_uri()

    def element_base(el: etree._Element) -> str:
        bases = [a.get(_XML_BASE) for a in reversed(list(el.iterancestors()))]
        bases.append(el.get(_XML_BASE))
        url = base_url
        for b in bases:
            if b:
                url = urllib.parse.urljoin(url, b)
        return url

    for el in root.iter(etree.Element):
        local = etree.QName(el).localname if el.tag.startswith("{") else el.tag
        if not el.tag.startswith(f"{{{OASIS_CATALOG_NS}}}"):
            continue
        base = element_base(el)
        if local == "uri" or local == "system":
            key = el.get("name") if local == "uri" else el.get("systemId")
            target = el.get("uri")
            if key and target:
                if key not in entries and key not in rewrites:
                    entries[key] = Path(_to_local_path(target, base, path))
        elif local in ("rewriteURI", "rewriteSystem"):
            key = el.get("uriStartString") if local == "rewriteURI" else el.get(
                "systemIdStartString"
            )
            target = el.get("rewritePrefix")
            if key and target:
                if key not in entries and key not in rewrites:
                    rewrites[key] = _to_local_path(target, base, path)
        elif local == "nextCatalog":
            nxt = el.get("catalog")
            if nxt:
                chained.append(_load_catalog(Path(_to_local_path(nxt, base, path)), seen))

    for other in chained:
        for key, target in other.items():
            if key in entries or key in rewrites:
                continue
            if key in other.rewrite_prefixes:
                rewrites[key] = other._rewrites[key]
            else:
                entries[key] = target
    return Catalog(entries, rewrites, source=path)


def _as_catalog(catalog: Catalog | Path | str | None) -> Catalog | None:
    if catalog is None or isinstance(catalog, Catalog):
        return catalog
    return load_oasis_catalog(catalog)


def _is_network_url(url: str) -> bool:
    scheme = urllib.parse.urlparse(url).scheme.lower()
    # A one-letter "scheme" is a Windows drive letter, not a URL.
    return scheme not in _LOCAL_SCHEMES and len(scheme) > 1


# --------------------------------------------------------------------------------------------
# lxml: compile
# --------------------------------------------------------------------------------------------


def hardened_parser() -> etree.XMLParser:
    """A parser that loads no DTD, expands no entities and never opens a network connection."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
    )


class CatalogResolver(etree.Resolver):
    """lxml resolver: catalog-mapped URLs go to their cached file, other network URLs are refused.

    ``no_network=True`` on the parser is not enough on its own: libxml2 loads ``xs:import`` /
    ``xs:include`` targets through the resolver chain, and whether its own network code is
    compiled in depends on the build. Refusing here makes the guarantee independent of that.
    ``resolved`` and ``refused`` record what happened, for audit and tests.
    """

    def __init__(self, catalog: Catalog | None) -> None:
        super().__init__()
        self.catalog = catalog
        self.resolved: dict[str, Path] = {}
        self.refused: list[str] = []

    def resolve(self, system_url: str, public_id: str | None, context: Any) -> Any:
        target = self.catalog.lookup(system_url) if self.catalog else None
        if target is not None:
            self.resolved[system_url] = target
            return self.resolve_filename(str(target), context)
        if system_url and _is_network_url(system_url):
            self.refused.append(system_url)
            # libxml2 turns this into a generic "failed to load" error; compile_xsd re-raises
            # the clear NetworkAccessRefused from the ``refused`` record.
            raise NetworkAccessRefused(system_url, self.catalog.source if self.catalog else None)
        return None  # local relative/absolute file: libxml2's default loader


def compile_xsd(
    entry_xsd: Path | str, catalog: Catalog | Path | str | None = None
) -> etree.XMLSchema:
    """Compile an XSD with lxml, resolving imports only through the OASIS catalog.

    Raises :class:`NetworkAccessRefused` naming the first URL the catalog could not map, and
    :class:`SchemaLoadError` for any other compile failure. Schema files themselves are trusted
    (they are reviewed config), but are still parsed without DTD loading or entity expansion;
    the W3C xmldsig schema carries an internal DTD subset that is harmless under these options.
    """
    cat = _as_catalog(catalog)
    entry = Path(entry_xsd).resolve()
    resolver = CatalogResolver(cat)
    parser = hardened_parser()
    parser.resolvers.add(resolver)
    try:
        doc = etree.parse(str(entry), parser)
        schema = etree.XMLSchema(doc)
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError, OSError) as err:
        if resolver.refused:
            raise NetworkAccessRefused(resolver.refused[0], cat.source if cat else None) from err
        raise SchemaLoadError(f"cannot compile {entry}: {err}") from err
    if resolver.refused:  # defensive: libxml2 skipped a failed import without failing
        raise NetworkAccessRefused(resolver.refused[0], cat.source if cat else None)
    return schema


# --------------------------------------------------------------------------------------------
# xmlschema: introspection and complete reporting
# --------------------------------------------------------------------------------------------


def xmlschema_schema(
    entry_xsd: Path | str | bytes, catalog: Catalog | Path | str | None = None
) -> xmlschema.XMLSchema:
    """Build an ``xmlschema.XMLSchema`` for introspection and complete error reporting.

    Same network rule as :func:`compile_xsd`: a ``uri_mapper`` maps through the catalog and
    raises :class:`NetworkAccessRefused` for anything else; ``allow="local"`` is a second lock
    and ``use_fallback=False`` stops xmlschema from silently substituting its own bundled copies
    of well-known schemas (it ships xmldsig, for instance), which would hide a missing catalog
    entry and make the two engines validate against different files.
    ``entry_xsd`` may be a path or the schema text as bytes (imports then resolve relative to
    the current directory, or through the catalog).
    """
    cat = _as_catalog(catalog)

    def uri_mapper(url: str) -> str:
        target = cat.lookup(url) if cat else None
        if target is not None:
            return target.as_uri()
        if _is_network_url(url):
            raise NetworkAccessRefused(url, cat.source if cat else None)
        return url

    source: Any
    if isinstance(entry_xsd, bytes):
        source = entry_xsd.decode("utf-8")
    else:
        source = str(Path(entry_xsd).resolve())
    try:
        return xmlschema.XMLSchema(
            source, uri_mapper=uri_mapper, allow="local", use_fallback=False
        )
    except NetworkAccessRefused:
        raise
    except (xmlschema.XMLSchemaException, OSError, SyntaxError) as err:
        raise SchemaLoadError(f"cannot build schema {entry_xsd!r}: {err}") from err


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

_DOCTYPE_RE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)


def parse_xml(xml_bytes: bytes) -> tuple[etree._ElementTree | None, list[Finding]]:
    """Hardened parse of a partner message: no DTD, no entities, no network.

    A DOCTYPE is refused outright rather than ignored: a partner message never needs one, and
    accepting it would mean trusting that every later consumer of the bytes is as careful.
    Returns ``(tree, [])`` or ``(None, findings)``.
    """
    parser = hardened_parser()
    try:
        tree = etree.fromstring(xml_bytes, parser).getroottree()
    except etree.XMLSyntaxError as err:
        # The parser's own log: err.error_log can also carry unrelated earlier errors of the
        # thread-global log.
        findings = [
            Finding(e.line or None, e.column or None, None, e.message)
            for e in parser.error_log
            if e.level >= etree.ErrorLevels.ERROR
        ]
        return None, findings or [Finding(err.lineno, err.offset, None, str(err))]
    info = tree.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        m = _DOCTYPE_RE.search(xml_bytes)
        line = xml_bytes.count(b"\n", 0, m.start()) + 1 if m else None
        return None, [
            Finding(line, None, None, "DOCTYPE declarations are not accepted (no DTDs, no entities)")
        ]
    return tree, []


def validate_xml(
    schema: etree.XMLSchema,
    xml_bytes: bytes,
    *,
    reporter: xmlschema.XMLSchema | None = None,
) -> list[Finding]:
    """Validate a message; return every finding (empty list = valid).

    The verdict is libxml2's (fast). libxml2 stops checking an element's remaining children
    after the first content-model error in it, so when it rejects and a ``reporter`` (the
    :func:`xmlschema_schema` of the same contract) is given, the report is produced by
    xmlschema, which continues past such errors; any libxml2 finding on a line xmlschema did not
    flag is kept as well, so disagreements between the engines never lose a finding.

    One deliberate exclusion: xmlschema checks that every xs:IDREF value matches an xs:ID in the
    document; libxml2 does not (and the public XWasser "valid" fixtures contain dangling
    IDREFs). Since the verdict is libxml2's, reporting IDREF findings only when some *other*
    error made the message fail would make the report depend on unrelated errors, so those are
    left out. Key/keyref constraints, which libxml2 does enforce, are reported.
    """
    tree, findings = parse_xml(xml_bytes)
    if tree is None:
        return findings
    if schema.validate(tree):
        return []
    nsmap = tree.getroot().nsmap
    lxml_findings = [
        Finding(e.line or None, e.column or None, e.path or None, _shorten(e.message, nsmap))
        for e in schema.error_log
        if e.level >= etree.ErrorLevels.ERROR
    ]
    if reporter is None:
        return lxml_findings
    complete = xmlschema_findings(reporter, tree)
    covered = {f.line for f in complete}
    merged = complete + [f for f in lxml_findings if f.line not in covered]
    return sorted(merged, key=lambda f: (f.line is None, f.line or 0))


def xmlschema_findings(reporter: xmlschema.XMLSchema, tree: etree._ElementTree) -> list[Finding]:
    """All xmlschema errors for an already-parsed lxml tree, mapped to source lines."""
    return list(iter_xmlschema_findings(reporter, tree))


def iter_xmlschema_findings(
    reporter: xmlschema.XMLSchema, tree: etree._ElementTree, deadline: float | None = None
) -> Iterator[Finding]:
    """The xmlschema errors for an already-parsed lxml tree, mapped to source lines, one by one.

    Content-model errors are positioned at the offending child (line and path), not at the
    parent xmlschema reports them on, so they line up with what libxml2 and a human would point
    at. IDREF-integrity errors are excluded (see :func:`validate_xml`).

    xmlschema is given a plain ElementTree copy of the tree (:func:`indexed_copy`): on lxml
    elements its errors cost time in the number of siblings (lxml walks the children to count or
    index them), which made a message with many unexpected elements take time in the square of
    their number. On the copy the cost is linear. xmlschema checks an element's children all at
    once before it reports the first error, so a caller with a time budget passes `deadline`
    (on `hub.findings.clock`): where the copy alone shows that the check would not fit, no error is
    reported here at all (:class:`BudgetExceeded`).
    """
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    copy = indexed_copy(root, deadline)
    for err in reporter.iter_errors(copy, namespaces={k: v for k, v in root.nsmap.items() if k}):
        reason = err.reason or str(err)
        if err.validator is reporter and reason.startswith("IDREF "):
            continue
        elem = err.elem
        line = getattr(elem, "sourceline", None)
        path = err.path
        subject = _prefixed(elem, err.namespaces) if elem is not None else None
        child = getattr(err, "invalid_child", None)
        if child is not None:
            line = getattr(child, "sourceline", line)
            path = f"{path}/{_prefixed(child, err.namespaces)}" if path else path
        message = f"Element '{subject}': {reason}" if subject else reason
        if isinstance(err.obj, str) and repr(err.obj) not in reason:
            message += f" (found {err.obj!r})"
        yield Finding(line, None, path, message)


class BudgetExceeded(Exception):
    """Completing the report would take longer than the caller's time budget."""


class _Lined(ElementTree.Element):
    """An ElementTree element that remembers the line it started on (lxml's `sourceline`)."""


#: xmlschema's work per element, as a multiple of the time copying it takes (measured: 3-4x)
_CHECK_PER_COPY = 5


def indexed_copy(root: etree._Element, deadline: float | None = None) -> ElementTree.Element:
    """The elements of an lxml tree as ElementTree elements with `sourceline`, O(1) to count and index.

    Comments and processing instructions are left out, their tails kept as text. With `deadline`,
    raises BudgetExceeded as soon as it is clear that copying and then checking the copy (about
    `_CHECK_PER_COPY` times the copy's time) would end after it."""
    started = clock()
    count = 0

    def copy(el: etree._Element) -> ElementTree.Element:
        nonlocal count
        new = _Lined(el.tag, dict(el.attrib))
        new.text, new.tail, new.sourceline = el.text, el.tail, el.sourceline
        last: ElementTree.Element | None = None
        for child in el:
            if isinstance(child.tag, str):
                last = copy(child)
                new.append(last)
            elif child.tail:  # a comment or PI: its tail is text of the element
                if last is None:
                    new.text = (new.text or "") + child.tail
                else:
                    last.tail = (last.tail or "") + child.tail
        count += 1
        if deadline is not None and count % 1024 == 0:
            now = clock()
            if started + (now - started) * (1 + _CHECK_PER_COPY) > deadline:
                raise BudgetExceeded
        return new

    result = copy(root)
    if deadline is not None and started + (clock() - started) * (1 + _CHECK_PER_COPY) > deadline:
        raise BudgetExceeded
    return result


def _prefixed(elem: Any, namespaces: Mapping[str, str] | None) -> str:
    tag = str(elem.tag)
    if not tag.startswith("{"):
        return tag
    uri, local = tag[1:].split("}", 1)
    for prefix, ns in (namespaces or {}).items():
        if ns == uri and prefix:
            return f"{prefix}:{local}"
    return local


def _shorten(message: str, nsmap: Mapping[str | None, str]) -> str:
    """Write libxml2's ``{namespace}local`` names with the prefix the sender used."""
    for prefix, uri in nsmap.items():
        message = message.replace(f"{{{uri}}}", f"{prefix}:" if prefix else "")
    return message
