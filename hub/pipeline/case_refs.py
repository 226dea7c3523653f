"""Case references inside a message body: where they are, for canonicalising and translating them.

A message about several cases (the monthly invoice) names a case per line; `contracts/dedup/policy.yaml`
(`case_refs`) says where, as a dotted path through lists such as `lines.case_id`.
"""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_camel

#: the fields that name a case: the provider's pseudonym, the agency's Kundennummer and BG-Nummer
CASE_ID_FIELDS = ("case_id", "customer_number", "bg_number")


def ref_nodes(body: dict[str, Any], parents: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(JSON pointer, label for a finding, object) of every object at `parents` below the body, through lists."""
    nodes: list[tuple[str, str, dict[str, Any]]] = [("/body", "body", body)]
    for key in parents:
        found = []
        for at, _, node in nodes:
            value = node.get(key)
            if isinstance(value, list):
                found += [(f"{at}/{to_camel(key)}/{i}", f"{key} {i + 1}", v) for i, v in enumerate(value) if isinstance(v, dict)]
            elif isinstance(value, dict):
                found.append((f"{at}/{to_camel(key)}", key, value))
        nodes = found
    return nodes
