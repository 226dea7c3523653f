"""Interface documentation (Schnittstellendokumentation) rendered from the contracts (`docs`), and the
schema scaffolding a new message type starts from (`generate`): both read the contracts, the partner
profiles and the formats, so they sit above the schema registry and the adapters."""
