"""Channel adapters: partner bytes <-> canonical message.

One module per partner-system format, each a small subclass of `Adapter`: like a kombu transport, a
new format is one new module. An adapter knows syntax and naming only; validation against the contract
happens before decoding (schemas) and routing decisions after it (pipeline).
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel

from hub.canonical import Message


@dataclass(frozen=True)
class FieldSpec:
    """What an adapter needs to know about one canonical field to write or read it generically."""

    name: str
    alias: str
    model: type[BaseModel] | None  # nested model, if the field holds one (or a list of them)
    many: bool
    required: bool
    codelist: str | None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] and Annotated[...] down to the core type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
        else:
            return annotation


@lru_cache(maxsize=None)
def fields_of(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    specs = []
    for name, info in model.model_fields.items():
        core = _unwrap(info.annotation)
        many = typing.get_origin(core) is list
        if many:
            core = _unwrap(typing.get_args(core)[0])
        nested = core if isinstance(core, type) and issubclass(core, BaseModel) else None
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        specs.append(
            FieldSpec(
                name=name,
                alias=info.alias or name,
                model=nested,
                many=many,
                required=info.is_required(),
                codelist=extra.get("codelist"),  # type: ignore[arg-type]
            )
        )
    return tuple(specs)


@lru_cache(maxsize=None)
def load_format(contracts_dir: Path, name: str) -> dict[str, Any]:
    """The format's data file under contracts/formats/: names, exclusions, namespace."""
    with open(contracts_dir / "formats" / f"{name}.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


class Adapter:
    """Base class: decode partner bytes into a canonical message, encode one into partner bytes."""

    format: ClassVar[str]
    media_type: ClassVar[str]

    def __init__(self, contracts_dir: Path) -> None:
        self.spec = load_format(contracts_dir, self.format)
        self.exclude: frozenset[str] = frozenset(self.spec.get("exclude", ()))

    def peek_header(self, data: bytes) -> dict[str, Any]:
        """Read just enough of the header to pick a contract (type, version, sender, UUID)."""
        raise NotImplementedError

    def decode(self, data: bytes) -> Message:
        raise NotImplementedError

    def encode(self, message: Message) -> bytes:
        raise NotImplementedError
