"""Interface documentation (Schnittstellendokumentation) rendered as static HTML from contracts/.

Why a package: the pages are built from several independent readings of the contracts, one module
each, so one can change without reading the rest:

* :mod:`~hub.interface.docs.tables`: the field table model both schema walkers fill.
* :mod:`~hub.interface.docs.codelists`: matching fields to the code lists under contracts/codelists.
* :mod:`~hub.interface.docs.xsd_fields`: field tables from XSD (xmlschema introspection).
* :mod:`~hub.interface.docs.json_fields`: field tables from JSON Schema.
* :mod:`~hub.interface.docs.partners`: a partner's contract versions and its format's field names.
* :mod:`~hub.interface.docs.render`: the output layout, the templates (hub/interface/templates) and
  :func:`render_docs`.
"""

from __future__ import annotations

from hub.interface.docs.json_fields import json_field_table
from hub.interface.docs.render import render_docs
from hub.interface.docs.xsd_fields import xsd_field_table

__all__ = ["json_field_table", "render_docs", "xsd_field_table"]
