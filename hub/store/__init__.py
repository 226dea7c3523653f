"""The message store and its plumbing: database, tables, migrations, the unit of work a pipeline
batch writes through, group commit for concurrent accepts, history and audit, and the read side
that partners and operators query. Nothing here knows about formats, routes or HTTP."""
