"""YAML contracts that remember where each value was written, so an error names file and line.

Rules, lifecycles and catalogues are data that integrators edit by hand; "unknown field 'iff'" is
only useful with the place it was written. `load` returns plain dicts and lists (subclasses that
carry the line of the mapping and of each key), and `ContractError` renders as ``file:line: text``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class Located(dict):
    """A mapping that knows the line it starts on and the line of each of its keys (1-based)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list):
    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class ContractError(ValueError):
    """A contract file is wrong: one sentence with the file and line it concerns."""

    def __init__(self, path: Path | str, line: int, message: str) -> None:
        self.path, self.line, self.text = str(path), line, message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. (YAML 1.1 reads `on:`, the sentry's key, as True.)"""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    result = Located()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise ContractError(getattr(loader, "path", "?"), key_node.start_mark.line + 1, f"{key!r} is given twice")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[str(key)] = key_node.start_mark.line + 1
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load(path: Path) -> Any:
    """The YAML document of `path`, its mappings `Located`; a syntax error is a `ContractError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(path, 0, f"cannot be read ({exc.strerror or exc})") from None
    loader = _Loader(text)
    loader.path = str(path)  # type: ignore[attr-defined]
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ContractError(path, mark.line + 1 if mark else 0, f"not valid YAML: {exc.problem or exc}") from None
    finally:
        loader.dispose()


def line(value: Any, key: str | int | None = None) -> int:
    """The line of `value` (or of its key/item `key`), 0 where it is not known."""
    if isinstance(value, Located):
        return value.line_of(str(key)) if key is not None else value.line
    if isinstance(value, LocatedList):
        return value.line_of(int(key)) if key is not None else value.line
    return 0
