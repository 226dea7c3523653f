"""The case chain: who belongs to a client's case, under which local reference (`membership`)."""
