"""The REST API: rooms and links, with API-key auth."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from signaling.model import Role, RoomSettings
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
