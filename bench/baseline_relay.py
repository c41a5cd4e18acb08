"""A bare aiohttp WebSocket relay: the baseline for bench/relay.py.

No auth, no rooms, no per-socket queue: `join` registers the socket under the id the client
picks, `signal` is forwarded to the socket registered under `to`, `admit` is forwarded as
`admitted` (plus `peer_joined` back) so that the message pattern matches Sessionroom's,
`leave` answers `left` and closes. Run: `python -m bench.baseline_relay --port 8099`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from aiohttp import WSMsgType, web

# As in Sessionroom, so that both servers keep the same ping timers per socket.
HEARTBEAT_SECONDS = 20.0
PEERS: web.AppKey[dict[str, web.WebSocketResponse]] = web.AppKey("peers", dict)


async def _forward(peers: dict[str, web.WebSocketResponse], to: str, msg: dict[str, Any]) -> None:
    target = peers.get(to)
    if target is not None and not target.closed:
        await target.send_str(json.dumps(msg))


async def relay(request: web.Request) -> web.WebSocketResponse:
    peers = request.app[PEERS]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS)
    await ws.prepare(request)
    me = ""
    try:
        async for raw in ws:
            if raw.type is not WSMsgType.TEXT:
                continue
            msg = json.loads(raw.data)
            kind = msg.get("type")
            if kind == "join":
                me = str(msg["id"])
                peers[me] = ws
                await ws.send_str(
                    json.dumps({"type": "joined", "participant": {"id": me}, "state": "in_room"})
                )
            elif kind == "signal":
                await _forward(
                    peers, msg["to"], {"type": "signal", "from": me, "data": msg["data"]}
                )
            elif kind == "admit":
                target = str(msg["participant"])
                await _forward(peers, target, {"type": "admitted", "peers": [{"id": me}]})
                await ws.send_str(
                    json.dumps({"type": "peer_joined", "participant": {"id": target}})
                )
            elif kind == "leave":
                await ws.send_str(json.dumps({"type": "left"}))
                await ws.close()
                break
    finally:
        if me and peers.get(me) is ws:
            del peers[me]
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    app = web.Application()
    app[PEERS] = {}
    app.router.add_get("/ws", relay)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
