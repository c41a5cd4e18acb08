"""Response schemas of the recordings endpoints, as recordings/manifest.py writes them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recordings.storage import FILE_NAME_RE, RECORDING_ID_RE
from signaling.core.model import ROOM_ID_RE
from signaling.openapi import PathParam, Schema

RECORDING_ID = PathParam("recording_id", RECORDING_ID_RE.pattern, "The recording's id.")
FILE_NAME = PathParam("name", FILE_NAME_RE.pattern, "A file of the recording, from its manifest.")


class ListRecordingsQuery(Schema):
    room: str | None = Field(
        default=None, pattern=ROOM_ID_RE.pattern, description="Only this room's recordings."
    )


class SessionInfo(Schema):
    request: str
    room_opened_at: float


class ParticipantInfo(Schema):
    id: str
    role: str
    name: str


class FileInfo(Schema):
    name: str
    participant: str
    bytes: int
    sha256: str
    duration: float
    codecs: list[str]


class LedgerEntry(Schema):
    seq: int
    at: float
    event: str
    room: str
    request: str | None
    recording: str | None
    participant: str | None
    granted: bool | None
    reason: str | None
    prev: str
    hash: str


class RecordingSummary(Schema):
    id: str
    room: str
    session: SessionInfo
    status: Literal["recording", "complete", "interrupted"]
    participants: list[ParticipantInfo]
    started_at: float
    stopped_at: float | None
    stop_reason: str | None
    files: list[FileInfo]


class RecordingManifest(RecordingSummary):
    ledger: list[LedgerEntry] = Field(description="The consent ledger's entries for it.")


class RecordingList(Schema):
    recordings: list[RecordingSummary]
