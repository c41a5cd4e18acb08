"""A participant's stored form and what others see of it."""

from __future__ import annotations

from signaling.core.model import Participant, ParticipantState, Role, RoomSettings, RoomState
from signaling.messages import participant_view


def person(media: bool = True) -> Participant:
    return Participant(
        id="p1",
        role=Role.CLIENT,
        identity="patient-1",
        display_name="Kim",
        state=ParticipantState.ADMITTED,
        link_id="link-1",
        resume_hash="h",
        joined_at=100.0,
        node="n1",
        media=media,
    )


def test_media_round_trips() -> None:
    for media in (True, False):
        p = person(media)
        assert Participant.from_dict(p.to_dict()) == p


def test_a_participant_stored_before_media_existed_takes_part_in_media() -> None:
    stored = person(media=False).to_dict()
    del stored["media"]
    assert Participant.from_dict(stored).media is True
    # And so in a whole stored room (Redis keeps rooms across restarts).
    room = RoomState(id="r", settings=RoomSettings(), created_at=1.0, origin="api")
    data = room.with_participant(person()).to_dict()
    del data["participants"][0]["media"]
    assert RoomState.from_dict(data).participants[0].media is True


def test_others_see_whether_a_participant_takes_part_in_media() -> None:
    chat_only = person(media=False)
    assert participant_view(chat_only) == {
        "id": "p1",
        "role": "client",
        "name": "Kim",
        "media": False,
    }
    assert participant_view(person())["media"] is True
