"""Schema-registry style compatibility checks (the module moved into this package to be split by engine)."""

from hub.schemas.compat.xsd import Change, Level, Violation, check, diff, diff_json_schema, diff_xsd

__all__ = ["Change", "Level", "Violation", "check", "diff", "diff_json_schema", "diff_xsd"]
