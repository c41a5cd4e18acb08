"""REST API under /api/v1, for the practice's own server (Bearer API key); the recordings
endpoints also take a therapist's link token (docs/recordings.md, "REST")."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from signaling.appkeys import SERVICE, SETTINGS
from signaling.errors import (
    BadMessage,
    Forbidden,
    InvalidToken,
    NotFound,
    SessionroomError,
    Unauthorized,
)
from signaling.model import Role, RoomSettings, RoomState, clean_display_name, valid_room_id

API_PREFIX = "/api/v1"
RECORDINGS_PREFIX = API_PREFIX + "/recordings"
DEFAULT_VALID_FOR = 4 * 3600
MAX_VALID_FOR = 30 * 24 * 3600

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(error: SessionroomError) -> web.Response:
    return web.json_response(
        {"code": error.code, "message": error.message}, status=error.http_status
    )


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors become JSON with a stable code, on every route."""
    try:
        return await handler(request)
    except SessionroomError as e:
        return error_response(e)


@dataclass(frozen=True)
class Principal:
    """Who made an API request: the practice's server (an API key, every room), or a
    therapist's link token, which sees only that therapist's room (recordings only)."""

    room: str | None = None


PRINCIPAL = web.RequestKey("principal", Principal)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def _is_recordings_route(request: web.Request) -> bool:
    # The route the router matched, not the raw path, decides: no path trick can carry a
    # link token to another endpoint.
    resource = request.match_info.route.resource
    return resource is not None and (
        resource.canonical == RECORDINGS_PREFIX
        or resource.canonical.startswith(RECORDINGS_PREFIX + "/")
    )


def _therapist_of(request: web.Request, token: str) -> Principal:
    try:
        claims = request.app[SERVICE].keys.verify(token)
    except InvalidToken:
        raise Unauthorized("A valid API key or therapist link token is required.") from None
    except SessionroomError as e:  # expired, not yet valid
        raise Unauthorized(e.message) from None
    if claims.role is not Role.THERAPIST:
        raise Forbidden("Only the therapist's link can reach the room's recordings.")
    return Principal(room=claims.room)


@web.middleware
async def api_key_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(API_PREFIX + "/"):
        keys = request.app[SETTINGS].api_keys
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given = given.strip() if scheme.lower() == "bearer" else ""
        if given and any(hmac.compare_digest(given.encode(), k.encode()) for k in keys):
            request[PRINCIPAL] = Principal(room=None)
        elif given and _is_recordings_route(request):
            request[PRINCIPAL] = _therapist_of(request, given)
        elif not keys:
            raise Unauthorized("No API keys are configured on this server (SESSIONROOM_API_KEYS).")
        else:
            raise Unauthorized()
    return await handler(request)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json(loads=json.loads)
    except ValueError:
        raise BadMessage("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadMessage("The request body must be a JSON object.")
    return body


def _number(body: dict[str, Any], key: str, default: float | None) -> float | None:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadMessage(f"'{key}' must be a number.")
    return float(value)


def _window(body: dict[str, Any]) -> tuple[float | None, float]:
    not_before = _number(body, "not_before", None)
    valid_for = _number(body, "valid_for", DEFAULT_VALID_FOR)
    assert valid_for is not None
    if not 60 <= valid_for <= MAX_VALID_FOR:
        raise BadMessage("'valid_for' must be from 60 seconds to 30 days.")
    return not_before, valid_for


def _room_id(request: web.Request) -> str:
    room_id = request.match_info["room_id"]
    if not valid_room_id(room_id):
        raise NotFound("No such room.")
    return room_id


async def create_room(request: web.Request) -> web.Response:
    body = await _body(request)
    settings = RoomSettings.from_dict(body.get("settings"))
    therapist_name = clean_display_name(body.get("therapist_name", "Therapist"))
    client_name = clean_display_name(body.get("client_name", "Client"))
    not_before, valid_for = _window(body)
    service = request.app[SERVICE]
    room = await service.create_room(settings)
    links = {
        # The links carry the room's settings, so that they reopen the same room should
        # the store ever lose it.
        "therapist": service.link(
            room.id,
            Role.THERAPIST,
            therapist_name,
            valid_for=valid_for,
            not_before=not_before,
            settings=settings,
        ),
        "client": service.link(
            room.id,
            Role.CLIENT,
            client_name,
            valid_for=valid_for,
            not_before=not_before,
            settings=settings,
        ),
    }
    return web.json_response(
        {"id": room.id, "settings": settings.to_dict(), "links": links}, status=201
    )


async def create_link(request: web.Request) -> web.Response:
    room_id = _room_id(request)
    service = request.app[SERVICE]
    room = await service.store.get(room_id)
    if room is None or room.ended:
        raise NotFound("No such room.")
    body = await _body(request)
    try:
        role = Role(body.get("role", "client"))
    except ValueError:
        raise BadMessage("'role' must be 'therapist' or 'client'.") from None
    name = clean_display_name(body.get("name", "Client" if role is Role.CLIENT else "Therapist"))
    not_before, valid_for = _window(body)
    url = service.link(
        room_id, role, name, valid_for=valid_for, not_before=not_before, settings=room.settings
    )
    return web.json_response({"url": url, "role": str(role)}, status=201)


def room_view(room: RoomState) -> dict[str, Any]:
    return {
        "id": room.id,
        "settings": room.settings.to_dict(),
        "created_at": room.created_at,
        "origin": room.origin,
        "ended": room.ended,
        "notice": room.notice,
        "waiting": [
            {"id": p.id, "name": p.display_name, "since": p.waiting_since, "connected": p.connected}
            for p in room.waiting
        ],
        "in_room": [{**p.public(), "connected": p.connected} for p in room.admitted],
    }


async def get_room(request: web.Request) -> web.Response:
    room = await request.app[SERVICE].store.get(_room_id(request))
    if room is None:
        raise NotFound("No such room.")
    return web.json_response(room_view(room))


async def delete_room(request: web.Request) -> web.Response:
    room_id = _room_id(request)
    service = request.app[SERVICE]
    room = await service.store.get(room_id)
    if room is None:
        raise NotFound("No such room.")
    if not room.ended:
        await service.end_room(room_id)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{API_PREFIX}/rooms", create_room)
    app.router.add_get(f"{API_PREFIX}/rooms/{{room_id}}", get_room)
    app.router.add_delete(f"{API_PREFIX}/rooms/{{room_id}}", delete_room)
    app.router.add_post(f"{API_PREFIX}/rooms/{{room_id}}/links", create_link)
