"""The recordings REST API against real files: the API key sees every room, a therapist's
link token only its own; nothing else gets in, and no id or name leaves the folder."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from recordings.manifest import Manifest
from recordings.storage import RecordingStorage
from signaling.appkeys import RECORDINGS
from signaling.config import Settings
from signaling.core.model import ROLE_PERMISSIONS, Permission, Role
from tests.conftest import Harness
from tests.recording_fixtures import make_webm, store_recording
from tests.support import make_settings

API = "/api/v1/recordings"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(recordings_dir=tmp_path / "recordings")


@pytest.fixture
def storage(client: TestClient[Any, Any]) -> RecordingStorage:
    found: RecordingStorage = client.app[RECORDINGS]
    return found


@pytest.fixture
def webm(tmp_path: Path) -> Path:
    return make_webm(tmp_path / "source.webm")


@pytest.fixture
def webm_bytes(webm: Path) -> bytes:
    return webm.read_bytes()


@pytest.fixture
def ours(storage: RecordingStorage, webm: Path) -> Manifest:
    return store_recording(storage, "r-ours", webm=webm, started_at=time.time() - 60)


@pytest.fixture
def theirs(storage: RecordingStorage, webm: Path) -> Manifest:
    return store_recording(storage, "r-theirs", webm=webm, started_at=time.time() - 30)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _therapist(harness: Harness, room: str = "r-ours") -> dict[str, str]:
    return _bearer(harness.token(room, Role.THERAPIST, "Dr Lee"))


async def _json(harness: Harness, path: str, headers: dict[str, str]) -> Any:
    resp = await harness.http.get(path, headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    return await resp.json()


async def test_the_api_key_lists_every_room_newest_first(
    harness: Harness, ours: Manifest, theirs: Manifest
) -> None:
    listed = await _json(harness, API, harness.api_headers)
    assert [r["id"] for r in listed["recordings"]] == [theirs.id, ours.id]
    assert listed["recordings"][1] == ours.summary()
    assert "ledger" not in listed["recordings"][0]
    by_room = await _json(harness, f"{API}?room=r-ours", harness.api_headers)
    assert [r["id"] for r in by_room["recordings"]] == [ours.id]
    assert (await _json(harness, f"{API}?room=r-none", harness.api_headers)) == {"recordings": []}


async def test_a_therapist_token_lists_only_its_room(
    harness: Harness, ours: Manifest, theirs: Manifest
) -> None:
    listed = await _json(harness, API, _therapist(harness))
    assert [r["id"] for r in listed["recordings"]] == [ours.id]
    listed = await _json(harness, f"{API}?room=r-ours", _therapist(harness))
    assert [r["id"] for r in listed["recordings"]] == [ours.id]
    resp = await harness.http.get(f"{API}?room=r-theirs", headers=_therapist(harness))
    assert resp.status == 403 and (await resp.json())["code"] == "forbidden"


async def test_the_manifest(harness: Harness, ours: Manifest) -> None:
    for headers in (harness.api_headers, _therapist(harness)):
        got = await _json(harness, f"{API}/{ours.id}", headers)
        assert got == ours.to_dict()
        assert got["session"]["request"] == ours.session_request
        assert [e["event"] for e in got["ledger"]] == [
            "requested", "answered", "answered", "started", "stopped",
        ]  # fmt: skip


async def test_a_file_whole_and_in_part(
    harness: Harness, ours: Manifest, webm_bytes: bytes
) -> None:
    expected = webm_bytes
    for headers in (harness.api_headers, _therapist(harness)):
        resp = await harness.http.get(f"{API}/{ours.id}/files/p-1.webm", headers=headers)
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "video/webm"
        assert resp.headers["Content-Disposition"] == 'attachment; filename="p-1.webm"'
        assert resp.headers["Accept-Ranges"] == "bytes"
        body = await resp.read()
        assert body == expected
        assert hashlib.sha256(body).hexdigest() == ours.files[0].sha256
    resp = await harness.http.get(
        f"{API}/{ours.id}/files/p-2.webm",
        headers={**harness.api_headers, "Range": "bytes=0-99"},
    )
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 0-99/{len(expected)}"
    part = await resp.read()
    assert len(part) == 100 and part == expected[:100]


async def test_delete(harness: Harness, ours: Manifest, storage: RecordingStorage) -> None:
    resp = await harness.http.delete(f"{API}/{ours.id}", headers=_therapist(harness))
    assert resp.status == 204
    assert not (storage.root / ours.id).exists()
    last = storage.ledger.entries()[-1]
    assert (last.event, last.recording, last.room, last.participant, last.reason) == (
        "deleted", ours.id, "r-ours", None, "deleted_by_therapist",
    )  # fmt: skip
    for path in (f"{API}/{ours.id}", f"{API}/{ours.id}/files/p-1.webm"):
        resp = await harness.http.get(path, headers=harness.api_headers)
        assert resp.status == 404 and (await resp.json())["code"] == "not_found"
    resp = await harness.http.delete(f"{API}/{ours.id}", headers=harness.api_headers)
    assert resp.status == 404


async def test_delete_with_the_api_key(
    harness: Harness, theirs: Manifest, storage: RecordingStorage
) -> None:
    resp = await harness.http.delete(f"{API}/{theirs.id}", headers=harness.api_headers)
    assert resp.status == 204
    assert storage.ledger.entries()[-1].reason == "deleted_by_api"


async def test_who_is_turned_away(
    harness: Harness, ours: Manifest, storage: RecordingStorage
) -> None:
    now = time.time()
    expired = harness.token("r-ours", Role.THERAPIST, not_before=now - 7200, valid_for=3600)
    later = harness.token("r-ours", Role.THERAPIST, not_before=now + 3600)
    refusals: list[tuple[dict[str, str], int, str]] = [
        ({}, 401, "unauthorized"),
        (_bearer("wrong"), 401, "unauthorized"),
        ({"Authorization": "Basic dGVzdA=="}, 401, "unauthorized"),
        (_bearer(_therapist(harness)["Authorization"][7:-3] + "abc"), 401, "unauthorized"),
        (_bearer(expired), 401, "unauthorized"),
        (_bearer(later), 401, "unauthorized"),
        (_bearer(harness.token("r-ours", Role.CLIENT)), 403, "forbidden"),
        (_therapist(harness, "r-theirs"), 403, "forbidden"),
    ]
    paths = [
        ("GET", f"{API}/{ours.id}"),
        ("GET", f"{API}/{ours.id}/files/p-1.webm"),
        ("DELETE", f"{API}/{ours.id}"),
    ]
    for headers, status, code in refusals:
        for method, path in paths:
            resp = await harness.http.request(method, path, headers=headers)
            assert (resp.status, (await resp.json())["code"]) == (status, code), (headers, path)
    for headers, status, _ in refusals[:6]:
        assert (await harness.http.get(API, headers=headers)).status == status
    client_list = await harness.http.get(API, headers=_bearer(harness.token("r-ours")))
    assert client_list.status == 403
    other = await _json(harness, API, _therapist(harness, "r-theirs"))
    assert other == {"recordings": []}
    assert (storage.root / ours.id / "p-1.webm").exists()


async def test_a_therapist_link_without_record_is_refused(
    harness: Harness, ours: Manifest, storage: RecordingStorage
) -> None:
    # A chat-only therapist link (or any minted without `record`) neither sees nor deletes.
    without_record = [p for p in ROLE_PERMISSIONS[Role.THERAPIST] if p is not Permission.RECORD]
    for perms in (without_record, [Permission.CHAT]):
        headers = _bearer(
            harness.token("r-ours", Role.THERAPIST, "Dr Lee", permissions=frozenset(perms))
        )
        for method, path in [
            ("GET", API),
            ("GET", f"{API}?room=r-ours"),
            ("GET", f"{API}/{ours.id}"),
            ("GET", f"{API}/{ours.id}/files/p-1.webm"),
            ("DELETE", f"{API}/{ours.id}"),
        ]:
            resp = await harness.http.request(method, path, headers=headers)
            body = await resp.json()
            assert (resp.status, body["code"]) == (403, "forbidden"), (perms, method, path)
            assert "record" in body["message"]
    assert (storage.root / ours.id / "p-1.webm").exists()
    assert all(e.event != "deleted" for e in storage.ledger.entries())
    # The API key and a therapist link with `record` still get in.
    assert [r["id"] for r in (await _json(harness, API, harness.api_headers))["recordings"]] == [
        ours.id
    ]
    assert (await _json(harness, f"{API}/{ours.id}", _therapist(harness)))["id"] == ours.id
    resp = await harness.http.delete(f"{API}/{ours.id}", headers=harness.api_headers)
    assert resp.status == 204


async def test_a_therapist_token_opens_nothing_but_recordings(harness: Harness) -> None:
    created = await harness.http.post("/api/v1/rooms", json={}, headers=_therapist(harness))
    assert created.status == 401
    resp = await harness.http.get("/api/v1/rooms/r-ours", headers=_therapist(harness))
    assert resp.status == 401


@pytest.mark.parametrize(
    "path",
    [
        f"{API}/rec-x",
        f"{API}/rec-20261126-093000-zzzzzz",
        f"{API}/..%2f..%2fetc",
        f"{API}/rec-..%2F..%2Fetc%2Fpasswd",
        f"{API}/rec-x/files/p-1.webm",
        f"{API}/rec-20261126-093000-zzzzzz/files/p-1.webm",
    ],
)
async def test_forged_ids_are_not_found(harness: Harness, ours: Manifest, path: str) -> None:
    for headers in (harness.api_headers, _therapist(harness)):
        resp = await harness.http.get(path, headers=headers)
        assert resp.status == 404, (path, await resp.text())


@pytest.mark.parametrize(
    "name",
    ["..%2fmanifest.json", "manifest.json", "..%2f..%2f..%2fetc%2fpasswd", "p-1.mp4",
     "p-3.webm", "%2e%2e", "..%2Fledger.jsonl"],
)  # fmt: skip
async def test_forged_names_are_not_found(harness: Harness, ours: Manifest, name: str) -> None:
    resp = await harness.http.get(f"{API}/{ours.id}/files/{name}", headers=harness.api_headers)
    assert resp.status == 404, (name, await resp.text())
    assert b"ledger" not in await resp.read()


async def test_with_no_api_keys_a_therapist_token_still_works(
    aiohttp_client: Any, tmp_path: Path, keys: Any, webm: Path
) -> None:
    from signaling.app import create_app
    from tests.support import mint

    app = create_app(make_settings(api_keys=(), recordings_dir=tmp_path / "r"), keys)
    client = await aiohttp_client(app)
    m = store_recording(app[RECORDINGS], "r-ours", webm=webm)
    resp = await client.get(API, headers=_bearer(mint(keys, "r-ours", Role.THERAPIST)))
    assert [r["id"] for r in (await resp.json())["recordings"]] == [m.id]
    resp = await client.get(API, headers=_bearer("some-key"))
    assert resp.status == 401
