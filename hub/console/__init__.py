"""The web console under /ops: what operators, case managers, auditors and admins see (docs/console.md)."""
