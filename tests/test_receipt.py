"""The quittung from a template (hub.receipt) is byte for byte the quittung of the full path --
built, encoded in the sender's format and version, validated -- for every partner and value."""

from __future__ import annotations

import datetime as dt
import random
import uuid

import pytest

from hub.pipeline import receipt
from hub.ids import new_id
from hub.runtime import Hub


def values(rng: random.Random, whole_seconds: bool) -> dict:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=rng.randrange(10**8), microseconds=0 if whole_seconds else rng.randrange(1, 10**6))
    return {
        "message_uuid": uuid.UUID(int=rng.getrandbits(128), version=4), "created_at": at,
        "reference_uuid": uuid.UUID(int=rng.getrandbits(128), version=4), "received_at": at - dt.timedelta(seconds=rng.randrange(1, 10**5)),
        "hub_id": new_id(),
    }


def test_every_partners_quittung_from_its_template_equals_the_full_path(hub: Hub) -> None:
    rng = random.Random(20261130)
    checked = 0
    for sender in hub.partners.values():
        if sender.format not in hub.registry.formats:
            continue
        version = sender.version_for(receipt.MESSAGE_TYPE, hub.registry.versions(receipt.MESSAGE_TYPE, sender.format))
        template = receipt.build(hub, sender, version)
        if template is None:
            # a format that reshapes a value (the CSV batch format writes local German time) keeps the full path
            assert sender.format == "municipal-csv", f"no template for {sender.id} ({sender.format} {version}): every quittung would take the slow path"
        for k in range(20):
            v = values(rng, whole_seconds=k % 4 == 0)
            full = receipt.encode_full(hub, sender, version, v)
            assert hub.part(receipt.Receipts).encode(sender, version, v) == full, f"{sender.id}: the quittung differs from the full path's for {v}"
            if template is not None:
                assert template.fill(v) == full, f"{sender.id}: the template's bytes differ from the full path's for {v}"
        checked += template is not None
    assert checked >= 2, "the agency XML and provider JSON partners get templates"


def test_a_format_that_would_write_a_value_differently_gets_no_template(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Substitution is only trusted where the second, fully encoded quittung agrees with it."""
    sender = next(p for p in hub.partners.values() if p.format == "provider-json")
    real = receipt.encode_full
    monkeypatch.setattr(receipt, "encode_full", lambda h, s, ver, v: real(h, s, ver, v).replace(b"7ZZZZZZZZZ0000000000000002", b"7ZZZZZZZZZ0000000000000002 "))
    assert receipt.build(hub, sender, "1.0") is None
