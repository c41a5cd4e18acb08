"""REST API under /api/v1, for the practice's own server (Bearer API key): the rooms and
links endpoints, authentication, errors, and the OpenAPI document of every endpoint. The
recordings endpoints (recordings/api.py) also take a therapist's link token."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import version

from aiohttp import web

from signaling import messages
from signaling.api_schemas import (
    ROOM_ID_PATTERN,
    CreateLink,
    CreateRoom,
    LinkCreated,
    Links,
    ListRoomsQuery,
    RoomCreated,
    RoomPage,
    RoomSettingsView,
    RoomView,
    permissions_of,
)
from signaling.appkeys import OPENAPI, SERVICE, SETTINGS
from signaling.core.errors import (
    Forbidden,
    InvalidToken,
    NotFound,
    SessionroomError,
    Unauthorized,
)
from signaling.core.model import Permission, Role, RoomSettings, RoomState, valid_room_id
from signaling.openapi import (
    API_PREFIX,
    OPENAPI_PATH,
    Handler,
    Operation,
    PathParam,
    add_operations,
    document,
    json_response,
    read_body,
    read_query,
)

RECORDINGS_PREFIX = API_PREFIX + "/recordings"


def error_response(error: SessionroomError) -> web.Response:
    return web.json_response(
        {"code": error.code, "message": error.message}, status=error.http_status
    )


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors become JSON with a stable code, on every route; nothing the API
    answers is kept by a cache."""
    try:
        response = await handler(request)
    except SessionroomError as e:
        response = error_response(e)
    if request.path.startswith(API_PREFIX + "/") and not response.prepared:
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@dataclass(frozen=True)
class Principal:
    """Who made an API request: the practice's server (an API key, every room), or a
    therapist's link token with `record`, which sees only that therapist's room (recordings
    only)."""

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
    if not claims.may(Permission.RECORD):
        raise Forbidden("This therapist link was made without the record permission.")
    return Principal(room=claims.room)


@web.middleware
async def api_key_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(API_PREFIX + "/") and request.path != OPENAPI_PATH:
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


ROOM_ID = PathParam("room_id", ROOM_ID_PATTERN, "The room's id.")


def _room_id(request: web.Request) -> str:
    room_id = request.match_info["room_id"]
    if not valid_room_id(room_id):
        raise NotFound("No such room.")
    return room_id


async def create_room(request: web.Request) -> web.Response:
    body = await read_body(request, CreateRoom)
    settings = RoomSettings.from_dict(body.settings.model_dump())
    service = request.app[SERVICE]
    room_id = service.new_room_id()
    # Both links are minted (and so checked) before anything is stored: a refused request
    # leaves no room behind. They carry the room's settings, so that they reopen the same
    # room should the store ever lose it.
    therapist, client = (
        service.link(
            room_id,
            role,
            name,
            valid_for=body.valid_for,
            not_before=body.not_before,
            settings=settings,
            identity=sub,
            permissions=permissions_of(perms),
        )
        for role, name, sub, perms in (
            (Role.THERAPIST, body.therapist_name, body.therapist_sub, body.therapist_permissions),
            (Role.CLIENT, body.client_name, body.client_sub, body.client_permissions),
        )
    )
    expires = max(therapist.expires, client.expires)
    await service.create_room(settings, room_id=room_id, expires_at=expires)
    created = RoomCreated(
        id=room_id,
        settings=RoomSettingsView(**settings.to_dict()),
        links=Links(therapist=therapist.url, client=client.url),
        expires_at=expires,
    )
    return json_response(created, status=201)


async def create_link(request: web.Request) -> web.Response:
    room_id = _room_id(request)
    service = request.app[SERVICE]
    room = await service.room_for_link(room_id)
    body = await read_body(request, CreateLink)
    role = Role(body.role)
    link = service.link(
        room_id,
        role,
        body.name or ("Client" if role is Role.CLIENT else "Therapist"),
        valid_for=body.valid_for,
        not_before=body.not_before,
        settings=room.settings,
        identity=body.sub,
        permissions=permissions_of(body.permissions),
    )
    await service.keep_room_until(room_id, link.expires)
    return json_response(LinkCreated(url=link.url, role=body.role, expires_at=link.expires), 201)


def room_view(room: RoomState) -> RoomView:
    return RoomView.model_validate(messages.room_view(room), strict=False)


async def list_rooms(request: web.Request) -> web.Response:
    query = read_query(request, ListRoomsQuery)
    # One more than the page: whether there is a next page is known without another read.
    rooms = await request.app[SERVICE].store.list_rooms(query.after, query.limit + 1)
    page = rooms[: query.limit]
    more = len(rooms) > query.limit
    return json_response(
        RoomPage(rooms=[room_view(r) for r in page], next=page[-1].id if more else None)
    )


async def get_room(request: web.Request) -> web.Response:
    room = await request.app[SERVICE].store.get(_room_id(request))
    if room is None:
        raise NotFound("No such room.")
    return json_response(room_view(room))


async def delete_room(request: web.Request) -> web.Response:
    room_id = _room_id(request)
    service = request.app[SERVICE]
    room = await service.store.get(room_id)
    if room is None:
        raise NotFound("No such room.")
    if not room.ended:
        await service.end_room(room_id)
    return web.Response(status=204)


OPERATIONS = (
    Operation(
        "POST",
        f"{API_PREFIX}/rooms",
        create_room,
        "Create a room and a link for its therapist and one for its client.",
        "createRoom",
        body=CreateRoom,
        status=201,
        response=RoomCreated,
    ),
    Operation(
        "GET",
        f"{API_PREFIX}/rooms",
        list_rooms,
        "List rooms in order of id, a page at a time.",
        "listRooms",
        query=ListRoomsQuery,
        response=RoomPage,
    ),
    Operation(
        "GET",
        f"{API_PREFIX}/rooms/{{room_id}}",
        get_room,
        "A room: its settings, who waits, who is in it, its recording state.",
        "getRoom",
        params=(ROOM_ID,),
        response=RoomView,
        errors=(404,),
    ),
    Operation(
        "DELETE",
        f"{API_PREFIX}/rooms/{{room_id}}",
        delete_room,
        "End the room's session for everyone in it.",
        "endRoom",
        params=(ROOM_ID,),
        status=204,
        errors=(404,),
    ),
    Operation(
        "POST",
        f"{API_PREFIX}/rooms/{{room_id}}/links",
        create_link,
        "Mint another link for a room that has not ended.",
        "createLink",
        params=(ROOM_ID,),
        body=CreateLink,
        status=201,
        response=LinkCreated,
        errors=(404,),
    ),
)


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


def add_routes(app: web.Application, operations: Iterable[Operation]) -> None:
    """The rooms routes, and the OpenAPI document of every operation in `operations`."""
    add_operations(app, OPERATIONS)
    app[OPENAPI] = document((*OPERATIONS, *operations), version=version("sessionroom"))
    app.router.add_get(OPENAPI_PATH, openapi_document)
