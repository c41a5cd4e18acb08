"""The REST API's operations as data: each route with its request and response schemas.

One table per API module registers the routes and, from the same entries, builds the
OpenAPI 3.1 document served at /api/v1/openapi.json. Request bodies and query strings are
read through the same pydantic models, so what is documented is what is checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from signaling.core.errors import BadMessage, MessageTooLarge, SessionroomError

API_PREFIX = "/api/v1"
OPENAPI_PATH = API_PREFIX + "/openapi.json"
# A request body larger than any valid one; the rest is refused before it is parsed.
MAX_BODY_BYTES = 16 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Who may call an operation: nobody needs a key, the practice's API key, or either the key
# or a therapist's link token (that therapist's room only).
Auth = Literal["none", "api_key", "api_key_or_therapist"]
ModelT = TypeVar("ModelT", bound=BaseModel)

ERROR_TEXT = {
    400: "The request is malformed: `bad_message`.",
    401: "No valid API key (or link token): `unauthorized`.",
    403: "The credentials may not reach this resource: `forbidden`.",
    404: "No such resource: `not_found`.",
    409: "The resource's state refuses this: `conflict` or `not_allowed`.",
    413: "The request body is too large: `message_too_large`.",
    429: "Too many requests from this address: `rate_limited`.",
    503: "The shared store is out of reach: `service_unavailable`.",
}


class Schema(BaseModel):
    """Base of every request and response schema: unknown fields and non-finite numbers
    are refused, and values are never coerced from another JSON type."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, frozen=True)


class ApiError(Schema):
    code: str
    message: str


@dataclass(frozen=True)
class PathParam:
    name: str
    pattern: str
    description: str


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    operation_id: str
    auth: Auth = "api_key"
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    params: tuple[PathParam, ...] = ()
    # Status of success and its JSON schema (None: no body).
    status: int = 200
    response: type[Schema] | None = None
    # A success that is not JSON: media type -> description (file downloads).
    media: dict[str, str] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)


def add_operations(app: web.Application, operations: Iterable[Operation]) -> None:
    for op in operations:
        app.router.add_route(op.method, op.path, op.handler)


def _refusal(error: ValidationError) -> BadMessage:
    """The first problem, by field; never the value sent (it may be huge or private)."""
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    text = first["msg"]
    return BadMessage(f"'{where}': {text}." if where else f"{text}.")


async def read_body(request: web.Request, model: type[ModelT]) -> ModelT:
    """The JSON body as `model`; an empty body is an empty object (every field defaulted)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise MessageTooLarge(f"A request body may be at most {MAX_BODY_BYTES // 1024} KiB.")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise MessageTooLarge(f"A request body may be at most {MAX_BODY_BYTES // 1024} KiB.")
    try:
        return model.model_validate_json(raw.strip() or b"{}")
    except ValidationError as e:
        raise _refusal(e) from None


def read_query(request: web.Request, model: type[ModelT]) -> ModelT:
    """The query string as `model`. Each parameter appears once; numbers arrive as text."""
    query = request.query
    if len(query) != len(set(query.keys())):
        raise BadMessage("Each query parameter may appear once.")
    try:
        return model.model_validate_strings(dict(query))
    except ValidationError as e:
        raise _refusal(e) from None


def json_response(value: Schema, status: int = 200) -> web.Response:
    return web.json_response(value.model_dump(mode="json"), status=status)


def _error_codes() -> list[str]:
    def walk(cls: type[SessionroomError]) -> Iterable[type[SessionroomError]]:
        yield cls
        for sub in cls.__subclasses__():
            yield from walk(sub)

    return sorted({c.code for c in walk(SessionroomError)})


def _query_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or text, never null: drop pydantic's null branch."""
    out = {k: v for k, v in prop.items() if k not in ("title", "anyOf", "default")}
    variants = [v for v in prop.get("anyOf", ()) if v.get("type") != "null"]
    if len(variants) == 1:
        out.update(variants[0])
    if prop.get("default") is not None:
        out["default"] = prop["default"]
    return out


Ref = Callable[[type["Schema"], JsonSchemaMode], dict[str, str]]


def _operation(op: Operation, ref: Ref) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    parameters: list[dict[str, Any]] = [
        {
            "name": p.name,
            "in": "path",
            "required": True,
            "description": p.description,
            "schema": {"type": "string", "pattern": p.pattern},
        }
        for p in op.params
    ]
    if op.query is not None:
        schema = op.query.model_json_schema()
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            prop = _query_schema(prop)
            parameters.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": ref(op.body, "validation")}},
        }
    responses: dict[str, Any] = {}
    success: dict[str, Any] = {"description": "Success."}
    if op.response is not None:
        success["content"] = {"application/json": {"schema": ref(op.response, "serialization")}}
    for media, description in op.media.items():
        success.setdefault("content", {})[media] = {
            "schema": {"type": "string", "format": "binary", "description": description}
        }
    if op.headers:
        success["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in op.headers.items()
        }
    responses[str(op.status)] = success
    errors = set(op.errors) | {400, 429, 503}
    if op.auth != "none":
        errors |= {401}
    if op.body is not None:
        errors |= {413}
    for status in sorted(errors):
        responses[str(status)] = {
            "description": ERROR_TEXT[status],
            "content": {"application/json": {"schema": ref(ApiError, "serialization")}},
        }
    out["responses"] = responses
    if op.auth == "none":
        out["security"] = []
    elif op.auth == "api_key_or_therapist":
        out["description"] = (
            "Takes the practice's API key, or a therapist's link token with the `record` "
            "permission, which reaches that therapist's room only."
        )
    return out


def document(operations: Iterable[Operation], *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations`."""
    ops = list(operations)
    # Requests are described as they are validated, responses as they are written.
    used: set[tuple[type[Schema], JsonSchemaMode]] = {(ApiError, "serialization")}
    for op in ops:
        if op.body is not None:
            used.add((op.body, "validation"))
        if op.response is not None:
            used.add((op.response, "serialization"))
    refs, defs = models_json_schema(
        sorted(used, key=lambda pair: (pair[0].__name__, pair[1])),
        ref_template="#/components/schemas/{model}",
    )

    def ref(model: type[Schema], mode: JsonSchemaMode) -> dict[str, str]:
        return dict(refs[(model, mode)])

    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, ref)
    components = defs.get("$defs", {})
    error_schema = components["ApiError"]
    error_schema["properties"]["code"]["enum"] = _error_codes()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sessionroom REST API",
            "version": version,
            "description": (
                "Rooms, links and recordings for a practice's own server. Every refusal is "
                "JSON with a stable `code` (docs/protocol.md lists them) and a `message`."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from SESSIONROOM_API_KEYS.",
                }
            },
        },
    }
