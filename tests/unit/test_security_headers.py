"""signaling.webpage's middleware: every response, a failure's 500 too, has the headers."""

from __future__ import annotations

import pytest
from aiohttp import web

from signaling.webpage import SECURITY_HEADERS, security_headers
from tests.conftest import AiohttpClient


async def _fails(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


async def _missing(request: web.Request) -> web.Response:
    raise web.HTTPNotFound()


@pytest.mark.parametrize(("path", "status"), [("/fails", 500), ("/missing", 404)])
async def test_failures_carry_the_security_headers(
    aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture, path: str, status: int
) -> None:
    app = web.Application(middlewares=[security_headers])
    app.router.add_get("/fails", _fails)
    app.router.add_get("/missing", _missing)
    client = await aiohttp_client(app)
    resp = await client.get(path)
    assert resp.status == status
    for name, value in SECURITY_HEADERS.items():
        assert resp.headers[name] == value
    if status == 500:
        assert (await resp.json())["code"] == "internal_error"
        assert "a bug" not in await resp.text()
        assert [r.getMessage() for r in caplog.records if r.exc_info] == ["request failed"]
