"""What makes two reports the same report: the digest the duplicate-report stage compares."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from hub.canonical import Message
from hub.partners import Partner
from hub.pipeline.case_refs import CASE_ID_FIELDS, ref_nodes


def report_digest(
    message_type: str, sender: Partner, case_id: str | None, message: Message,
    case_of: Callable[[str], str | None] | None = None, case_refs: Sequence[str] = (),
) -> str:
    """Sender, test or not, case and content -- not the ids that name the case, nor the order of
    lines that name cases.

    Reports count per sender (partner): the same report again -- under another message id, through
    another channel, from a second installation under the same partner -- is a duplicate, but two
    partners' reports are never compared. Else a provider could learn from its own message's status
    `duplicate` what another provider had reported about a shared client, and a Jobcenter's answer
    with the same content as a provider's proposal would never reach the provider. A test message
    (header `test`) never makes its production twin a duplicate. Cases named inside the body
    (`case_refs`, e.g. an invoice's lines) count by the hub's case, which `case_of` finds for the
    sender's reference."""
    body = {k: v for k, v in message.body_dict().items() if k not in CASE_ID_FIELDS}
    for path in case_refs:
        _canonical_case_refs(body, path, case_of or (lambda ref: None))
    key = {"type": message_type, "from": sender.id, "test": bool(message.header.test), "case": case_id, "body": body}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _canonical_case_refs(body: dict[str, Any], path: str, case_of: Callable[[str], str | None]) -> None:
    """In place: the sender's case references at `path` (dotted, through lists) replaced by the hub's
    case (or the reference itself where no case is found), agency ids beside them dropped, and every
    list on the way sorted, so that neither a system's own references nor the line order count."""
    *parents, field_name = path.split(".")
    for _, _, node in ref_nodes(body, parents):
        ref = node.pop(field_name, None) or node.get("customer_number")
        for name in CASE_ID_FIELDS:
            node.pop(name, None)
        if ref:
            node["case"] = case_of(str(ref)) or f"ref:{ref}"
    _sort_lists(body, parents)


def _sort_lists(node: Any, parents: list[str]) -> None:
    """Every list on the way along `parents` in one canonical order, innermost first."""
    if not parents or not isinstance(node, dict):
        return
    value = node.get(parents[0])
    if isinstance(value, list):
        for item in value:
            _sort_lists(item, parents[1:])
        value.sort(key=lambda item: json.dumps(item, sort_keys=True, default=str))
    else:
        _sort_lists(value, parents[1:])
