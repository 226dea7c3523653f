"""Which code list a field draws its values from, and whether the schema and the list agree.

Why a module of its own: XSD code types (a fixed ``listURI``) and plain enumerations in XSD or JSON
Schema are all matched against the same lists under contracts/codelists, and a disagreement (a
value in the schema but not the list, another ``listVersionID``) is shown on the page as a warning
rather than hidden, whichever schema language the field came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.schemas.codelists import CodeList


@dataclass
class CodeListRef:
    """A code list a field draws its values from, and whether schema and list agree."""

    uri: str
    version: str | None
    key: str | None = None  # the file stem under contracts/codelists, if the list is known there
    name: str | None = None
    warnings: list[str] = field(default_factory=list)


class CodeLists:
    def __init__(self, lists: dict[str, CodeList]) -> None:
        self.lists = lists
        self.by_uri = {c.list_uri: c for c in lists.values()}

    def ref(self, uri: str | None, version: str | None, values: list[str] | None) -> CodeListRef | None:
        """A reference by listURI, or by an enumeration that is exactly one list's set of codes."""
        known = self.by_uri.get(uri) if uri else None
        if known is None and values:
            matches = [c for c in self.lists.values() if set(c.codes) == set(values)]
            known = matches[0] if len(matches) == 1 else None
        if known is None and not uri:
            return None
        ref = CodeListRef(uri=uri or known.list_uri, version=version)  # type: ignore[union-attr]
        if known is None:
            ref.warnings.append("Codeliste ist nicht unter contracts/codelists hinterlegt")
            return ref
        ref.key, ref.name = known.key, known.name
        if version is None:
            ref.version = known.list_version
        elif version != known.list_version:
            ref.warnings.append(f"Schema nennt listVersionID {version}, hinterlegt ist Version {known.list_version}")
        if values is not None:
            extra = [v for v in values if v not in known.codes]
            missing = [v for v in known.codes if v not in values]
            if extra:
                ref.warnings.append("im Schema, nicht in der Codeliste: " + ", ".join(extra))
            if missing:
                ref.warnings.append("in der Codeliste, nicht im Schema: " + ", ".join(missing))
        return ref

    def meanings(self, ref: CodeListRef | None, values: list[str]) -> list[tuple[str, str]]:
        codes = self.lists[ref.key].codes if ref and ref.key else {}
        return [(v, codes.get(v, "")) for v in values]
