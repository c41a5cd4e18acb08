"""The REST API: rooms and links, with API-key auth."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from signaling.core.model import Permission, Role, RoomSettings
from tests.conftest import Harness

BAD_KEY = {"Authorization": "Bearer wrong"}


async def _create(harness: Harness, body: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = await harness.http.post("/api/v1/rooms", json=body or {}, headers=harness.api_headers)
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


def _token(url: str) -> str:
    assert "/join#" in url
    return url.split("#", 1)[1]


async def test_api_needs_a_valid_key(client: TestClient[Any, Any]) -> None:
    for headers in ({}, BAD_KEY, {"Authorization": "Basic dGVzdA=="}):
        resp = await client.post("/api/v1/rooms", json={}, headers=headers)
        assert resp.status == 401
        assert (await resp.json())["code"] == "unauthorized"


async def test_created_room_links_work(harness: Harness) -> None:
    created = await _create(
        harness,
        {"settings": {"max_clients": 2}, "therapist_name": "Dr Lee", "client_name": "Kim"},
    )
    assert created["settings"] == {"max_clients": 2, "waiting_room": True, "recording": "off"}
    assert created["links"]["client"].startswith("http://sessionroom.test/join#")
    therapist = await harness.join(_token(created["links"]["therapist"]))
    client = await harness.join(_token(created["links"]["client"]))
    assert therapist.joined["room"]["id"] == created["id"]
    assert client.joined["participant"]["name"] == "Kim"
    assert client.joined["state"] == "waiting"

    resp = await harness.http.get(f"/api/v1/rooms/{created['id']}", headers=harness.api_headers)
    view = await resp.json()
    assert [w["id"] for w in view["waiting"]] == [client.id]
    assert [p["id"] for p in view["in_room"]] == [therapist.id]
    assert view["settings"]["max_clients"] == 2
    # The links carry the room's settings too, so they would reopen the same room.
    for link in created["links"].values():
        assert harness.keys.verify(_token(link)).room_settings == RoomSettings(max_clients=2)
    text = await resp.text()
    assert "resume" not in text and _token(created["links"]["client"]) not in text


async def test_more_links_for_a_room(harness: Harness) -> None:
    created = await _create(harness, {"settings": {"max_clients": 2}})
    resp = await harness.http.post(
        f"/api/v1/rooms/{created['id']}/links",
        json={"role": "client", "name": "Partner", "valid_for": 600},
        headers=harness.api_headers,
    )
    assert resp.status == 201
    partner = await harness.join(_token((await resp.json())["url"]))
    assert partner.joined["participant"]["name"] == "Partner"


async def test_delete_ends_the_room_for_everyone(harness: Harness) -> None:
    created = await _create(harness)
    therapist = await harness.join(_token(created["links"]["therapist"]))
    resp = await harness.http.delete(f"/api/v1/rooms/{created['id']}", headers=harness.api_headers)
    assert resp.status == 204
    assert (await therapist.expect("ended"))["by"] is None
    assert await therapist.expect_closed() == 1000
    view = await (
        await harness.http.get(f"/api/v1/rooms/{created['id']}", headers=harness.api_headers)
    ).json()
    assert view["ended"] is True


async def test_api_errors(harness: Harness) -> None:
    h = harness.api_headers
    for path in ("/api/v1/rooms/nope", "/api/v1/rooms/..%2Fetc"):
        resp = await harness.http.get(path, headers=h)
        assert resp.status == 404 and (await resp.json())["code"] == "not_found"
    resp = await harness.http.delete("/api/v1/rooms/nope", headers=h)
    assert resp.status == 404
    for body in (
        {"settings": {"max_clients": 4}},
        {"settings": {"recording": "always"}},
        {"settings": {"colour": "blue"}},
        {"valid_for": 5},
        {"client_name": ""},
    ):
        resp = await harness.http.post("/api/v1/rooms", json=body, headers=h)
        assert resp.status == 400, body
        assert (await resp.json())["code"] == "bad_message"
    resp = await harness.http.post("/api/v1/rooms", data="{oops", headers=h)
    assert resp.status == 400


async def test_a_link_opens_a_room_the_api_never_created(harness: Harness) -> None:
    settings = RoomSettings(max_clients=1, waiting_room=False)
    therapist = await harness.join(
        harness.token("practice-42", Role.THERAPIST, "T", settings=settings)
    )
    assert therapist.joined["room"] == {"id": "practice-42", "settings": settings.to_dict()}
    client = await harness.join(harness.token("practice-42", settings=settings))
    assert client.joined["state"] == "in_room"
    view = await (
        await harness.http.get("/api/v1/rooms/practice-42", headers=harness.api_headers)
    ).json()
    assert view["origin"] == "link"


async def _room_count(harness: Harness) -> int:
    resp = await harness.http.get("/api/v1/rooms?limit=200", headers=harness.api_headers)
    assert resp.status == 200
    rooms: list[object] = (await resp.json())["rooms"]
    return len(rooms)


@pytest.mark.parametrize(
    "raw",
    [
        '{"not_before": NaN}',
        '{"not_before": Infinity}',
        '{"not_before": -Infinity}',
        '{"valid_for": 1e999}',
        '{"settings": ' + "[" * 5000 + "]" * 5000 + "}",
        "[" * 5000 + "]" * 5000,
        # Unknown fields are refused at every level, by one rule.
        '{"recording": "consent"}',
        '{"settings": {"colour": "blue"}}',
        '{"valid_for": "3600"}',
        '{"valid_for": 3600.5}',
        '{"valid_for": 1e300}',
        '{"settings": {"waiting_room": "yes"}}',
        '{"client_permissions": ["record"]}',
        '{"client_permissions": ["chat", "chat"]}',
        '{"therapist_sub": "has space"}',
        '{"not_before": 100, "valid_for": 2592001}',
        "[]",
        '"text"',
    ],
)
async def test_malformed_room_requests_are_refused_and_create_nothing(
    harness: Harness, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    resp = await harness.http.post(
        "/api/v1/rooms",
        data=raw,
        headers={**harness.api_headers, "Content-Type": "application/json"},
    )
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert body["code"] == "bad_message" and body["message"]
    assert resp.headers["Cache-Control"] == "no-store"
    assert await _room_count(harness) == 0
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_whole_numbers_may_be_written_with_a_point(harness: Harness) -> None:
    created = await _create(harness, {"settings": {"max_clients": 2.0}, "valid_for": 600.0})
    assert created["settings"]["max_clients"] == 2
    claims = harness.keys.verify(_token(created["links"]["client"]))
    assert claims.expires - claims.not_before == 600


async def test_an_oversized_body_is_refused(harness: Harness) -> None:
    resp = await harness.http.post(
        "/api/v1/rooms",
        data=json.dumps({"client_name": "x" * 40_000}),
        headers={**harness.api_headers, "Content-Type": "application/json"},
    )
    assert resp.status == 413 and (await resp.json())["code"] == "message_too_large"
    assert await _room_count(harness) == 0


async def test_links_carry_the_practices_ids_and_fewer_permissions(harness: Harness) -> None:
    created = await _create(
        harness,
        {
            "therapist_sub": "clinician-7",
            "client_sub": "patient:1234",
            "therapist_permissions": ["admit", "deny", "lobby_notice", "end", "signal", "chat"],
            "client_permissions": ["chat"],
            "settings": {"recording": "consent"},
        },
    )
    therapist_claims = harness.keys.verify(_token(created["links"]["therapist"]))
    client_claims = harness.keys.verify(_token(created["links"]["client"]))
    assert therapist_claims.identity == "clinician-7"
    assert client_claims.identity == "patient:1234"
    assert client_claims.permissions == {Permission.CHAT}
    assert created["expires_at"] == client_claims.expires

    therapist = await harness.join(_token(created["links"]["therapist"]))
    client = await harness.join(_token(created["links"]["client"]))
    await therapist.send(type="admit", participant=client.id)
    await client.expect("admitted")
    # A chat-only client may chat but not send media signals.
    await client.send(type="signal", to=therapist.id, data={"sdp": "x"})
    await client.expect_error("forbidden")
    await client.send(type="chat", text="typing only today")
    assert (await therapist.expect("chat"))["text"] == "typing only today"
    # A therapist link without `record` cannot ask to record.
    await therapist.send(type="recording_request")
    await therapist.expect_error("forbidden")

    resp = await harness.http.post(
        f"/api/v1/rooms/{created['id']}/links",
        json={"role": "client", "sub": "patient:1234", "permissions": ["admit"]},
        headers=harness.api_headers,
    )
    assert resp.status == 400 and (await resp.json())["code"] == "bad_message"
    resp = await harness.http.post(
        f"/api/v1/rooms/{created['id']}/links",
        json={"role": "therapist", "permissions": ["admit", "record"], "valid_for": 7200},
        headers=harness.api_headers,
    )
    assert resp.status == 201
    link = await resp.json()
    claims = harness.keys.verify(_token(link["url"]))
    assert claims.permissions == {Permission.ADMIT, Permission.RECORD}
    assert claims.identity.startswith("therapist-")
    assert link["expires_at"] == claims.expires


async def test_rooms_are_listed_a_page_at_a_time(harness: Harness) -> None:
    made = {(await _create(harness))["id"] for _ in range(5)}
    seen: list[str] = []
    after = None
    for _ in range(5):
        query = "limit=2" + (f"&after={after}" if after else "")
        resp = await harness.http.get(f"/api/v1/rooms?{query}", headers=harness.api_headers)
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
        page = await resp.json()
        assert len(page["rooms"]) <= 2
        seen += [r["id"] for r in page["rooms"]]
        after = page["next"]
        if after is None:
            break
    assert seen == sorted(made)
    for query in (
        "limit=0",
        "limit=201",
        "limit=two",
        "after=../x",
        "colour=blue",
        "limit=1&limit=2",
    ):
        resp = await harness.http.get(f"/api/v1/rooms?{query}", headers=harness.api_headers)
        assert resp.status == 400, query
        assert (await resp.json())["code"] == "bad_message"


async def test_the_room_view_has_its_recording_state(harness: Harness) -> None:
    created = await _create(harness, {"settings": {"recording": "consent"}})
    therapist = await harness.join(_token(created["links"]["therapist"]))
    client = await harness.join(_token(created["links"]["client"]))
    await therapist.send(type="admit", participant=client.id)
    await client.expect("admitted")
    await therapist.send(type="recording_request")
    await client.expect("consent_request")
    resp = await harness.http.get(f"/api/v1/rooms/{created['id']}", headers=harness.api_headers)
    view = await resp.json()
    assert resp.headers["Cache-Control"] == "no-store"
    assert view["recording"]["status"] == "pending"
    assert view["recording"]["requested_by"] == therapist.id
    assert set(view["recording"]["answers"]) == {therapist.id, client.id}
    assert view["expires_at"] == created["expires_at"]


async def test_the_room_view_says_who_is_chat_only(harness: Harness) -> None:
    created = await _create(harness, {"client_permissions": ["chat", "consent"]})
    therapist = await harness.join(_token(created["links"]["therapist"]))
    client = await harness.join(_token(created["links"]["client"]))
    resp = await harness.http.get(f"/api/v1/rooms/{created['id']}", headers=harness.api_headers)
    view = await resp.json()
    assert [(w["id"], w["media"]) for w in view["waiting"]] == [(client.id, False)]
    assert [(p["id"], p["media"]) for p in view["in_room"]] == [(therapist.id, True)]
