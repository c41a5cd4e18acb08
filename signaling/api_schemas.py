"""Request and response schemas of the rooms and links endpoints (docs/protocol.md, REST).

Bounds here are the domain's own (model.py, tokens.py), so a request the schema accepts is
one the service can carry out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from signaling.core.model import (
    MAX_CLIENTS_LIMIT,
    MAX_NAME_LENGTH,
    ROLE_PERMISSIONS,
    ROOM_ID_RE,
    Permission,
    Role,
)
from signaling.openapi import Schema
from signaling.tokens import IDENTITY_RE, MAX_VALID_FOR

DEFAULT_VALID_FOR = 4 * 3600
MIN_VALID_FOR = 60
# A time far beyond any appointment: bounds `not_before` to something a clock can hold.
LATEST_TIME = 4102444800.0  # 2100-01-01
MAX_PAGE = 200

ROOM_ID_PATTERN = ROOM_ID_RE.pattern
DisplayName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=r"\S",
        description="Shown to the others in the room; runs of white space become one space.",
    ),
]
Identity = Annotated[
    str,
    Field(
        pattern=IDENTITY_RE.pattern,
        description=(
            "The practice's own id for this person (printable ASCII, no spaces), carried in "
            "the link as `sub`. A random one when absent."
        ),
    ),
]
RoleName = Literal["therapist", "client"]
AnyPermission = Literal[
    "admit", "deny", "lobby_notice", "end", "signal", "chat", "record", "consent"
]
ClientPermission = Literal["signal", "chat", "consent"]
NotBefore = Annotated[
    float,
    Field(ge=0, le=LATEST_TIME, description="Unix time the link becomes valid; now if absent."),
]


def _whole(value: object) -> object:
    # JSON Schema counts 2.0 as an integer; so does the API. Text is still refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# The bounds come before the validator: the other way round, pydantic leaves them out of
# the JSON schema.
ValidFor = Annotated[
    int,
    Field(ge=MIN_VALID_FOR, le=MAX_VALID_FOR, description="Seconds from `not_before`."),
    BeforeValidator(_whole),
]
MaxClients = Annotated[int, Field(ge=1, le=MAX_CLIENTS_LIMIT), BeforeValidator(_whole)]


def _unique(values: list[str] | None) -> list[str] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("each permission may be named once")
    return values


def permissions_of(names: Sequence[str] | None) -> frozenset[Permission] | None:
    """The permissions named for a link; None leaves it the role's own."""
    return None if names is None else frozenset(Permission(n) for n in names)


class RoomSettingsBody(Schema):
    max_clients: MaxClients = 1
    waiting_room: bool = True
    recording: Literal["off", "consent"] = "off"


class CreateRoom(Schema):
    settings: RoomSettingsBody = RoomSettingsBody()
    therapist_name: DisplayName = "Therapist"
    client_name: DisplayName = "Client"
    therapist_sub: Identity | None = None
    client_sub: Identity | None = None
    therapist_permissions: list[AnyPermission] | None = Field(
        default=None,
        json_schema_extra={"uniqueItems": True},
        description="Fewer permissions for the therapist's link; all of a therapist's if absent.",
    )
    client_permissions: list[ClientPermission] | None = Field(
        default=None,
        json_schema_extra={"uniqueItems": True},
        description="Fewer permissions for the client's link, e.g. ['chat'] for chat only.",
    )
    not_before: NotBefore | None = None
    valid_for: ValidFor = DEFAULT_VALID_FOR

    _unique_perms = field_validator("therapist_permissions", "client_permissions")(_unique)


_CLIENT_ONLY: dict[str, Any] = {
    "if": {"properties": {"role": {"const": "therapist"}}, "required": ["role"]},
    "else": {
        "properties": {
            "permissions": {
                "anyOf": [
                    {"type": "array", "items": {"enum": sorted(ROLE_PERMISSIONS[Role.CLIENT])}},
                    {"type": "null"},
                ]
            }
        }
    },
}


class CreateLink(Schema):
    # Merged with Schema's own configuration.
    model_config = ConfigDict(json_schema_extra=_CLIENT_ONLY)

    role: RoleName = "client"
    name: DisplayName | None = Field(default=None, description="'Client' or 'Therapist' if absent.")
    sub: Identity | None = None
    permissions: list[AnyPermission] | None = Field(
        default=None,
        json_schema_extra={"uniqueItems": True},
        description="Fewer permissions than the role's own; a client's are signal, chat, consent.",
    )
    not_before: NotBefore | None = None
    valid_for: ValidFor = DEFAULT_VALID_FOR

    _unique_perms = field_validator("permissions")(_unique)

    @model_validator(mode="after")
    def _within_role(self) -> CreateLink:
        allowed = ROLE_PERMISSIONS[Role(self.role)]
        if self.permissions is not None and not {Permission(p) for p in self.permissions} <= (
            allowed
        ):
            raise ValueError(f"a {self.role} link cannot carry those permissions")
        return self


class ListRoomsQuery(Schema):
    limit: int = Field(default=50, ge=1, le=MAX_PAGE, description="Rooms per page.")
    after: str | None = Field(
        default=None,
        pattern=ROOM_ID_PATTERN,
        description="The `next` of the previous page: rooms after this id.",
    )


class RoomSettingsView(Schema):
    max_clients: int
    waiting_room: bool
    recording: Literal["off", "consent"]


class Links(Schema):
    therapist: str
    client: str


class RoomCreated(Schema):
    id: str
    settings: RoomSettingsView
    links: Links
    expires_at: int = Field(description="Unix time the last of the room's links expires.")


class LinkCreated(Schema):
    url: str
    role: RoleName
    expires_at: int


class WaitingView(Schema):
    id: str
    name: str
    since: float | None
    connected: bool
    media: bool = Field(description="False for a chat-only link (no `signal` permission).")
    new_device: bool = Field(
        description="The client's link opened elsewhere without the resume secret: "
        "admitting this entry replaces the participant `replaces`."
    )
    replaces: str | None


class InRoomView(Schema):
    id: str
    role: RoleName
    name: str
    connected: bool
    media: bool = Field(description="False for a chat-only link (no `signal` permission).")


class RecordingStateView(Schema):
    status: Literal["idle", "pending", "recording", "stopped"]
    request: str | None
    recording: str | None
    requested_by: str | None
    answers: dict[str, bool | None]
    reason: str | None
    by: str | None
    at: float | None


class RoomView(Schema):
    id: str
    settings: RoomSettingsView
    created_at: float
    origin: Literal["api", "link"]
    ended: bool
    expires_at: float | None = Field(
        description="When the last link minted for it through the API expires (API rooms)."
    )
    notice: str
    waiting: list[WaitingView]
    in_room: list[InRoomView]
    recording: RecordingStateView


class RoomPage(Schema):
    rooms: list[RoomView]
    next: str | None = Field(description="Pass as `after` for the next page; null at the end.")
