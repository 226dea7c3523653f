"""Schema-registry style compatibility checks for XSD and JSON Schema contract versions.

Why: a contract version is a promise to partners. The registry must refuse a new version whose
change breaks the compatibility level declared for the message type (architecture.md,
"Contracts are the product"), and say *what* broke, for XSD as well as JSON Schema.

The package is split by engine, each module one concept:

* :mod:`~hub.schemas.compat.changes`: the change vocabulary (:class:`Change` and its kinds).
* :mod:`~hub.schemas.compat.constraints`: bound, pattern, value-list and count comparisons
  both engines share.
* :mod:`~hub.schemas.compat.jsonschema`: the JSON Schema differ (open/closed content models,
  the ``writers`` reading).
* :mod:`~hub.schemas.compat.xsd`: the XSD differ (closed content models, wildcards).
* :mod:`~hub.schemas.compat.levels`: BACKWARD/FORWARD/FULL/transitive policy and :func:`check`.

Where a relation cannot be decided cheaply (two different regex patterns, changed unions or
``anyOf``/``oneOf``, a sequence turned into a choice) the change is reported as breaking both
directions: the registry errs on the side of refusing, with a message saying why.
Not analysed: identity constraints (key/keyref), ``xsi:type`` substitution, substitution
groups, attribute wildcards, ``if/then/else``; differences there are reported conservatively
only where they surface as one of the change kinds.
"""

from __future__ import annotations

from hub.schemas.compat.changes import Change
from hub.schemas.compat.jsonschema import diff_json_schema
from hub.schemas.compat.levels import Level, Violation, check, diff
from hub.schemas.compat.xsd import diff_xsd

__all__ = [
    "Change",
    "Level",
    "Violation",
    "check",
    "diff",
    "diff_json_schema",
    "diff_xsd",
]
