"""The parts of :class:`hub.dedup.person_index.PersonIndex`, one concept per module.

``base`` (state, filed forms, locks, events), ``candidates`` (lookups in the database),
``filing`` (resolve: file a record, follow its changes), ``reviews`` (the operators' queue),
``merges`` (merge, unmerge, following merges), ``crossref`` (local ids in and out, pseudonyms).
They are mixins of one class: import :class:`~hub.dedup.person_index.PersonIndex` from
:mod:`hub.dedup.person_index`.
"""
