"""The HTTP face: the FastAPI app (`app`), bearer-token authentication (`auth`), the operator
endpoints for identity reviews (`reviews`) and the interface documentation site (`docs_site`)."""
