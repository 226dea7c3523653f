"""Interface documentation rendered from contracts/ (the module moved into this package to be split)."""

from hub.interface.docs.render import json_field_table, render_docs, xsd_field_table

__all__ = ["json_field_table", "render_docs", "xsd_field_table"]
