"""The parts of :class:`hub.dedup.linkage.Linker`, one concept per module.

``base`` (settings, results, comparing pairs), ``training`` (fit), ``pairs`` (batch dedupe and
link), ``incremental`` (the in-memory index: add, match, score). They are mixins of one class and
only make sense composed: import :class:`~hub.dedup.linkage.Linker` from :mod:`hub.dedup.linkage`.
"""
