"""Channel adapters: partner bytes <-> canonical message.

One module per partner-system format, each a small subclass of `Adapter` that only knows syntax and
naming: `read` turns bytes into a header and a body dict (canonical field names, the version's own
structure), `write` does the reverse, `paths` says which fields a contract version can carry. The
base class puts the version translator in between, so every format gets version translation for free
and a new format is one new module, like a kombu transport.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from hub.schemas import translator
from hub.schemas.formats import formats_in
from hub.canonical import Header, Message

if TYPE_CHECKING:
    from hub.schemas.registry import Contract, Registry


#: byte order marks of the wide Unicode encodings; UTF-32LE's starts with UTF-16LE's, so it comes first
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
#: bytes looked at for the NUL pattern of a file without a byte order mark
_SNIFF_BYTES = 4096


def wide_unicode(data: bytes) -> str | None:
    """"UTF-16" or "UTF-32" if `data` is text in one of them, else None.

    Recognised by the byte order mark, or without one by the NUL bytes that Latin text has in them:
    in UTF-32 two (or three) of every four bytes, in UTF-16 every second byte, always at the same
    place. A stray NUL in a one-byte encoding has no such pattern and is not taken for either."""
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            return name
    sample = data[: _SNIFF_BYTES - _SNIFF_BYTES % 4]
    sample = sample[: len(sample) - len(sample) % 4]
    if len(sample) < 4 or b"\x00" not in sample:
        return None
    quarter = len(sample) // 4
    nul = [sample[i::4].count(0) for i in range(4)]
    if (nul[2] == nul[3] == quarter and nul[0] < quarter) or (nul[0] == nul[1] == quarter and nul[3] < quarter):
        return "UTF-32"
    half = len(sample) // 2
    odd, even = nul[1] + nul[3], nul[0] + nul[2]
    if min(odd, even) <= half // 10 and max(odd, even) >= half // 2:
        return "UTF-16"
    return None


def load_format(contracts_dir: Path, name: str) -> dict[str, Any]:
    """The format's data file under contracts/formats/: names, media type, defaults."""
    return formats_in(Path(contracts_dir).resolve())[name].spec


class Adapter:
    """Base class: decode partner bytes into a canonical message, encode one into partner bytes."""

    #: the format this class implements by default; `contracts/formats/<name>.yaml` may bind another
    #: name to the same class (a second format with the same syntax)
    format: str
    media_type: str

    def __init__(self, contracts_dir: Path, fmt: str | None = None) -> None:
        self.contracts_dir = contracts_dir
        self.format = fmt or type(self).format
        self.spec = load_format(contracts_dir, self.format)
        self.media_type = self.spec["media_type"]

    @cached_property
    def registry(self) -> Registry:
        from hub.schemas.registry import registry_for

        return registry_for(self.contracts_dir)

    # -- what a format implements --------------------------------------------------------------------
    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """Whether a file starting with `head` (BOM and leading blanks removed) looks like this format
        (for `hub contracts validate FILE`, which is not told the format)."""
        return False

    def pointer(self, path: str) -> str | None:
        """The JSON pointer of a canonical body field (dotted) in this format, for findings; None
        where the format has no JSON pointers (XML and CSV findings carry line and column)."""
        return None

    def parse(self, data: bytes) -> Any:
        """Bytes -> document (hardened); raises Refusal on malformed input."""
        raise NotImplementedError

    def peek_header(self, data: bytes, document: Any = None) -> dict[str, Any]:
        """Just enough of the header to pick a contract: message_type, version, sender, message_uuid."""
        raise NotImplementedError

    def read(self, data: bytes, document: Any, contract: Contract) -> tuple[dict[str, Any], dict[str, Any]]:
        """Header and body as dicts with canonical names, body still in the version's structure."""
        raise NotImplementedError

    def write(self, header: Header, body: dict[str, Any], contract: Contract) -> bytes:
        raise NotImplementedError

    def paths(self, contract: Contract) -> frozenset[str]:
        """Every body path (canonical names, dotted) that this contract version can carry."""
        raise NotImplementedError

    def texts(self, data: bytes, document: Any, contract: Contract, every: bool) -> Iterator[tuple[str, dict[str, Any], str]]:
        """The message's text values as (canonical field name, location as Finding fields, text),
        for the character checks of ingress (hub.schemas.characters). With `every` False only those
        that may hold a character XML cannot carry (a format whose parser refuses them yields none)."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------
    def decode(self, data: bytes, document: Any = None) -> Message:
        document = self.parse(data) if document is None else document
        head = self.peek_header(data, document)
        contract = self.registry.get(head["message_type"], head["version"], self.format)
        header, body = self.read(data, document, contract)
        body = translator.to_canonical(body, self.registry.version_map(contract.message_type, contract.version))
        return Message.build(header, body)

    def encode(self, message: Message, version: str | None = None) -> bytes:
        return self.encode_report(message, version)[0]

    def encode_checked(self, message: Message, version: str, recipient: str) -> tuple[bytes, list[str]]:
        """`encode_report`, then checked against the recipient's contract like every delivery: output
        that breaks it is a hub defect and is never sent (RuntimeError: retry, then dead letter)."""
        data, dropped = self.encode_report(message, version)
        contract = self.registry.get(message.header.message_type, version, self.format)
        findings = self.registry.validate(contract, self.parse(data))
        if findings:
            raise RuntimeError(f"encoded {message.header.message_type} {version} for {recipient} violates its contract: {findings[0].message}")
        return data, dropped

    def encode_report(self, message: Message, version: str | None = None) -> tuple[bytes, list[str]]:
        """Encode in `version` (default: the message's own); also return the fields it could not carry."""
        version = version or message.header.version
        contract = self.registry.get(message.header.message_type, version, self.format)
        body, dropped = translator.from_canonical(
            message.body_dict(), self.registry.version_map(contract.message_type, version), self.paths(contract)
        )
        header = message.header.model_copy(update={"version": version})
        return self.write(header, body, contract), dropped
