"""Health, readiness, metrics and what the logs may contain."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from signaling.logs import JsonFormatter, TextFormatter
from tests.conftest import Harness


async def test_health_and_readiness(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["status"] == "ready"


async def test_metrics_count_sockets_rooms_messages_and_errors(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    await harness.client("r", name="Waiting")
    await therapist.send(type="signal", to=client.id, data={})
    await client.expect("signal")
    await therapist.ws.send_str("{bad")
    await therapist.expect_error("bad_message")
    text = await (await harness.http.get("/metrics")).text()
    lines = set(text.splitlines())
    assert "sessionroom_sockets 3" in lines
    assert "sessionroom_rooms 1" in lines
    assert "sessionroom_waiting_clients 1" in lines
    assert 'sessionroom_messages_total{type="signal"} 1' in lines
    assert 'sessionroom_messages_total{type="admit"} 1' in lines
    assert 'sessionroom_errors_total{code="bad_message"} 1' in lines
    assert 'sessionroom_joins_total{role="client"} 2' in lines
    assert "# TYPE sessionroom_messages_total counter" in lines


async def test_logs_name_ids_never_names_tokens_or_chat(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    therapist = await harness.therapist("r", name="Doctor Zebedee")
    client = await harness.client("r", name="Quentin Private")
    await therapist.expect("lobby")
    await therapist.send(type="admit", participant=client.id)
    await client.expect("admitted")
    await client.send(type="chat", text="my secret worry")
    await therapist.expect("chat")
    await therapist.send(type="deny", participant="ghost", message="private note")
    await therapist.expect_error("not_found")
    await client.ws.close()
    await therapist.expect("peer_reconnecting")
    await therapist.send(type="end")
    await therapist.expect("ended")

    assert caplog.records
    rendered = "\n".join(
        f.format(r) for r in caplog.records for f in (JsonFormatter(), TextFormatter())
    )
    assert client.id in rendered and "r" in rendered
    for secret in (
        "Zebedee",
        "Quentin",
        "my secret worry",
        "private note",
        client.link,
        client.link.split(".")[1],
        client.joined["resume"].split(".")[1],
    ):
        assert secret not in rendered, secret
