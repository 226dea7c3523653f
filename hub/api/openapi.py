"""What the OpenAPI document and /docs tell a partner's integrator, kept apart from the handlers.

The document must describe the API as partners meet it: message bodies in the media types the
intake takes, the bearer scheme (so Swagger UI's Authorize works), every error as RFC 9457
problem+json with its findings -- the shapes `hub.findings.Refusal.problem` and `hub.api.error_answer`
send, never FastAPI's own HTTPValidationError -- and /docs must work on a network without internet,
so Swagger UI is served from assets shipped in the package (hub/api/static/swagger-ui, see its README).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.staticfiles import StaticFiles

from hub.findings import PROBLEMS

PROBLEM = "application/problem+json"

#: the partner's bearer token; the scheme only documents it (auto_error=False): hub.api.authenticate
#: checks the header and answers 401 problems itself
BEARER = HTTPBearer(
    scheme_name="bearer",
    description="The partner's token, issued by the hub's operator (`hub partners token PARTNER`). Sent as `Authorization: Bearer <token>`.",
    auto_error=False,
)

#: where the vendored Swagger UI is served (below /docs, beside /docs/interfaces)
ASSETS_PATH = "/docs/swagger-ui"
ASSETS_DIR = Path(__file__).parent / "static" / "swagger-ui"


def _absent(schema: dict[str, Any]) -> None:
    """An optional field the hub leaves out rather than sending null: no `default: null` in its schema."""
    schema.pop("default", None)


class Finding(BaseModel):
    """One problem in a message, where it is."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="What is wrong, in one sentence.")
    location: str = Field(description='Where: `line L, column C` (XML, CSV), a JSON pointer such as `/body/facts` (JSON), or "" if the finding concerns the whole message.')
    line: int | SkipJsonSchema[None] = Field(None, description="Line in the message (XML, CSV); absent where not known.", json_schema_extra=_absent)
    column: int | SkipJsonSchema[None] = Field(None, description="Column in that line; absent where not known.", json_schema_extra=_absent)
    pointer: str | SkipJsonSchema[None] = Field(
        None, description="JSON pointer into a JSON message (or into the request, e.g. `/query/limit`); absent for XML and CSV.", json_schema_extra=_absent
    )


def _kinds() -> str:
    rows = "\n".join(f"| `urn:casechain:problem:{kind}` | {status} | {title} |" for kind, (status, title) in PROBLEMS.items())
    return f"| type | status | title |\n|---|---|---|\n{rows}\n| `about:blank` | 500 | Internal error (logged; says nothing more) |"


class Problem(BaseModel):
    """An RFC 9457 problem: why the hub refused the request, with every finding it made."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description=f"The kind of problem, the stable part to switch on:\n\n{_kinds()}")
    title: str = Field(description="Short text of the kind.")
    status: int = Field(description="The HTTP status.")
    detail: str = Field(description="One clear sentence about this request.")
    instance: str | SkipJsonSchema[None] = Field(None, description="The path the request went to.", json_schema_extra=_absent)
    findings: list[Finding] = Field(default_factory=list, description="The problems found in the message (at most 100 listed; a last finding then counts the rest).")


class Accepted(BaseModel):
    """The answer to a message the hub took."""

    id: str = Field(description="The hub's id of the message.")
    status_url: str = Field(description="Where its status and history are (`GET /v1/messages/{id}`).")
    duplicate: bool = Field(description="True for a resend of a message UUID the hub already has (answer 200, not processed again).")


class Verdict(BaseModel):
    """The answer of `POST /v1/validate` to a message the hub would take."""

    valid: bool = Field(description="Always true: a message the hub would refuse gets the problem POST /v1/messages would answer.")
    message_type: str
    version: str
    format: str = Field(description="The partner's format: agency-xml, provider-json or municipal-csv.")
    findings: list[Finding] = Field(default_factory=list, description="Empty: a valid message has none.")


#: why each status answers (the same words on every endpoint)
_STATUS = {
    400: "Malformed message or request (not well-formed, wrong encoding, incomplete header, bad parameter).",
    401: "No bearer token, or one that is not valid.",
    403: "Not allowed: the message type is not in the partner's contract, or the header names another sender.",
    404: "Not found, or not visible to the caller.",
    409: "Conflict with the current state.",
    413: "The message exceeds the hub's size limit.",
    415: "Not the media type of the partner's format.",
    422: "Well-formed, but the message does not satisfy its contract; the findings say where.",
    503: "The hub cannot serve right now; send again after `Retry-After` seconds (with the same message UUID).",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the error answers of an endpoint: each a Problem, and `default` for the rest
    (a 500 says nothing internal). Declaring them keeps FastAPI from adding its HTTPValidationError:
    the hub answers invalid requests with a 400 problem."""
    answers: dict[int | str, dict[str, Any]] = {s: {"model": Problem, "description": _STATUS[s]} for s in statuses}
    answers["default"] = {"model": Problem, "description": "Any other failure: a 500 problem that says nothing internal."}
    return answers


#: the message body of POST /v1/messages and /v1/validate, in every media family the intake takes
#: (hub.ingress.media_family: also text/xml and +xml / +json types). A partner sends its own format.
MESSAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One message in the partner's own format, as its contract says (`GET /v1/contracts`, `/docs/interfaces/`).",
        "content": {
            "application/xml": {
                "schema": {"type": "string", "format": "binary"},
                "description": "Agency XML (Jobcenter, municipal Fachverfahren): an XÖV-style message, root element named after its type. Also taken as `text/xml` or a `+xml` media type.",
            },
            "application/json": {
                "schema": {"type": "object", "required": ["header", "body"], "properties": {"header": {"type": "object"}, "body": {"type": "object"}}},
                "description": 'Provider JSON: `{"header": {...}, "body": {...}}` with camelCase names, UTF-8. Also taken as a `+json` media type.',
            },
            "text/csv": {
                "schema": {"type": "string", "format": "binary"},
                "description": "Municipal CSV (`text/csv; charset=ISO-8859-15`): the header line and exactly ONE record, `;`-separated, "
                "ISO-8859-15 (or UTF-8 starting with a byte order mark). A batch file of many records goes through the file drop channel instead.",
            },
        },
    }
}

def _rules(max_bytes: int) -> str:
    return (
        "\n\nThe hub checks the message at once and answers with every finding: the media type must be the one of "
        "the partner's format, the header's sender must be the caller, the message type must be in the "
        "partner's contract and the message must satisfy that contract version (schema, code lists, "
        f"characters). A message may have at most {max_bytes:,} bytes.\n\n"
    )


def submit_description(max_bytes: int) -> str:
    return (
        "Submit one message. A message the hub takes is stored and routed to its recipients; the answer is "
        "`202` with its id and a `Location` to follow it. A resend of the same message UUID is answered `200` "
        "with the first id and is not processed again, so a partner that did not get an answer sends again safely."
        + _rules(max_bytes)
        + "To check a message without sending it, use `POST /v1/validate`."
    )


def validate_description(max_bytes: int) -> str:
    return (
        "Check one message exactly as `POST /v1/messages` would, without storing or routing it. A message the hub "
        "would take is answered `200` with a verdict; one it would refuse gets the same problem (status, type and "
        "findings) as `POST /v1/messages`." + _rules(max_bytes).rstrip()
    )


def _problems_as_problem_json(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI puts a response model under the route's media type (application/json); the hub sends
    its errors as application/problem+json, so the document says so."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if (status[0] in "45" or status == "default") and "application/json" in content:
                    content[PROBLEM] = content.pop("application/json")
    return document


def install(app: FastAPI) -> None:
    """The OpenAPI document's problem media type, and Swagger UI at /docs from the package's assets.

    The app must be made with docs_url=None and redoc_url=None (FastAPI's pages load from a CDN)."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        return _problems_as_problem_json(default_openapi())

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} – API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            # no online validator badge: the hub's network may have no internet
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )
