"""The master person index: one person behind the records of many systems, in the database.

Every record a partner sends about a person is filed under (partner, local id) - the id
cross-reference - and under the person the linker decides it belongs to. Blocking keys are stored
in an indexed table, so a lookup fetches only the records that share a key with the query and
scores them with the Fellegi-Sunter model (contracts/dedup/model.json). Uncertain matches wait in a
review queue; merges and unmerges are recorded as events and never lose a record: each record
remembers the person it was first filed under, so an unmerge gives back exactly the records of the
person and of the persons merged into it, however far later merges carried them.

A record is always filed under a live person (one not merged into another). When a known record's
data changes so that it no longer matches the other records of its person, it is split off into a
person of its own (and offered for review where the model is unsure). On PostgreSQL, resolutions
and merges that could concern the same person take advisory locks on the records' blocking keys,
so two workers never file one new person twice (SQLite has one writer anyway).

The index is composed of one part per concept (hub/dedup/index): ``candidates`` (lookups),
``filing`` (resolve, refresh), ``reviews``, ``merges`` and ``crossref`` (local ids, pseudonyms) on
a shared ``base``. The public names of this module are the same as before the split.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import yaml

from hub.dedup.index.base import FIELDS, KEY_WIDTH, LOCK_SPACE, Filed, Resolution, lock_hash, person_record
from hub.dedup.index.candidates import SQLITE_MMAP
from hub.dedup.index.crossref import PSEUDONYM_PREFIX, CrossReference, new_pseudonym
from hub.dedup.index.filing import Filing, changed_fields
from hub.dedup.linkage import Linker

__all__ = [
    "PersonIndex", "person_index_for", "Resolution", "Filed", "FIELDS", "KEY_WIDTH", "SQLITE_MMAP", "LOCK_SPACE",
    "PSEUDONYM_PREFIX", "person_record", "lock_hash", "changed_fields", "new_pseudonym",
]


class PersonIndex(Filing, CrossReference):
    """The master person index of one contracts directory: the linker's model and the policy's
    subjects (contracts/dedup/model.json, policy.yaml); see this module's docstring."""

    @classmethod
    def load(cls, contracts_dir: Path) -> PersonIndex | None:
        model, policy = contracts_dir / "dedup" / "model.json", contracts_dir / "dedup" / "policy.yaml"
        if not model.exists():
            return None
        return cls(Linker.from_dict(json.loads(model.read_text(encoding="utf-8"))), yaml.safe_load(policy.read_text(encoding="utf-8")))


@lru_cache(maxsize=None)
def person_index_for(contracts_dir: Path) -> PersonIndex | None:
    return PersonIndex.load(contracts_dir)
