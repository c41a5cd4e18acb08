"""The recordings REST endpoints (docs/recordings.md, "REST").

`signaling.api.api_key_auth` lets in the API key (every room) and, here only, a therapist's
link token (that therapist's room); each handler then checks the recording's room against
the request's principal. Storage does blocking file I/O, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from recordings.api_schemas import (
    FILE_NAME,
    RECORDING_ID,
    ListRecordingsQuery,
    RecordingList,
    RecordingManifest,
)
from recordings.manifest import Manifest
from recordings.storage import RecordingStorage
from signaling.api import RECORDINGS_PREFIX, Principal, principal
from signaling.appkeys import RECORDINGS, SERVICE
from signaling.core.errors import Forbidden
from signaling.openapi import Operation, add_operations, json_response, read_query

CONTENT_TYPES = {".webm": "video/webm", ".mkv": "video/x-matroska"}


def _storage(request: web.Request) -> RecordingStorage:
    return request.app[RECORDINGS]


def _check_room(who: Principal, manifest: Manifest) -> None:
    if who.room is not None and who.room != manifest.room:
        raise Forbidden("This recording belongs to another room.")


async def _manifest(request: web.Request) -> Manifest:
    """The recording named in the path, if the principal may see it."""
    manifest = await asyncio.to_thread(
        _storage(request).read_manifest, request.match_info["recording_id"]
    )
    _check_room(principal(request), manifest)
    return manifest


async def list_recordings(request: web.Request) -> web.Response:
    who = principal(request)
    room = read_query(request, ListRecordingsQuery).room
    if who.room is not None:
        if room is not None and room != who.room:
            raise Forbidden("A therapist's link sees only its own room's recordings.")
        room = who.room
    manifests = await asyncio.to_thread(_storage(request).list, room)
    listing = RecordingList.model_validate(
        {"recordings": [m.summary() for m in manifests]}, strict=False
    )
    return json_response(listing)


async def get_recording(request: web.Request) -> web.Response:
    manifest = await _manifest(request)
    return json_response(RecordingManifest.model_validate(manifest.to_dict(), strict=False))


async def get_file(request: web.Request) -> web.FileResponse:
    manifest = await _manifest(request)
    name = request.match_info["name"]
    path = await asyncio.to_thread(_storage(request).file_path, manifest.id, name)
    return web.FileResponse(
        path,
        headers={
            "Content-Type": CONTENT_TYPES[path.suffix],
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


async def delete_recording(request: web.Request) -> web.Response:
    manifest = await _manifest(request)
    by_api = principal(request).room is None
    await asyncio.to_thread(
        _storage(request).delete,
        manifest.id,
        at=request.app[SERVICE].clock(),
        by=None,
        reason="deleted_by_api" if by_api else "deleted_by_therapist",
    )
    return web.Response(status=204)


OPERATIONS = (
    Operation(
        "GET",
        RECORDINGS_PREFIX,
        list_recordings,
        "List recordings, newest first, of every room or of one.",
        "listRecordings",
        auth="api_key_or_therapist",
        query=ListRecordingsQuery,
        response=RecordingList,
        errors=(403,),
    ),
    Operation(
        "GET",
        f"{RECORDINGS_PREFIX}/{{recording_id}}",
        get_recording,
        "A recording's manifest, with its consent ledger entries.",
        "getRecording",
        auth="api_key_or_therapist",
        params=(RECORDING_ID,),
        response=RecordingManifest,
        errors=(403, 404),
    ),
    Operation(
        "DELETE",
        f"{RECORDINGS_PREFIX}/{{recording_id}}",
        delete_recording,
        "Delete a recording's files; the ledger keeps a `deleted` entry.",
        "deleteRecording",
        auth="api_key_or_therapist",
        params=(RECORDING_ID,),
        status=204,
        errors=(403, 404),
    ),
    Operation(
        "GET",
        f"{RECORDINGS_PREFIX}/{{recording_id}}/files/{{name}}",
        get_file,
        "One participant's recorded file (byte ranges supported).",
        "getRecordingFile",
        auth="api_key_or_therapist",
        params=(RECORDING_ID, FILE_NAME),
        media={
            "video/webm": "The participant's audio and video.",
            "video/x-matroska": "The participant's audio and video.",
        },
        errors=(403, 404),
    ),
)


def add_routes(app: web.Application) -> None:
    add_operations(app, OPERATIONS)
