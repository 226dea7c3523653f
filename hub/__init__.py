"""CaseChain Hub: a data-exchange hub for SGB II case chains.

The hub receives partner messages, validates them against versioned contracts, decodes them into a
canonical model, routes them by rules, case membership and purpose, and delivers each recipient only
the fields its purpose allows, in its own format and version.
"""

__version__ = "0.1.0"
