"""The `sessionroom` command: `serve` runs a node, `link` mints a link offline, `recordings`
lists and verifies recordings."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from aiohttp import web

from recordings.ledger import FileLedger
from recordings.storage import LEDGER_FILE, RecordingStorage
from recordings.verify import verify, when
from signaling import logs, ops
from signaling.app import create_app
from signaling.appkeys import SERVICE, SETTINGS
from signaling.config import Settings, add_arguments, settings_from
from signaling.core.errors import SessionroomError
from signaling.core.model import Permission, RecordingMode, Role, RoomSettings
from signaling.rooms import link_url
from signaling.secret_file import ResolvedSecret, key_ring, resolve_secret

DEMO_VALID_FOR = 8 * 3600
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '2h', '1d' -> seconds."""
    m = _DURATION_RE.match(text.strip().lower())
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30m, 2h or 1d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None


def _permissions(text: str) -> frozenset[Permission]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    try:
        return frozenset(Permission(n) for n in names)
    except ValueError:
        known = ", ".join(p.value for p in Permission)
        raise argparse.ArgumentTypeError(f"permissions are some of: {known}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sessionroom", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service")
    add_arguments(serve)
    serve.add_argument(
        "--demo",
        action="store_true",
        default=os.environ.get("SESSIONROOM_DEMO", "") not in ("", "0"),
        help="create a demo room and print a therapist link and a client link [SESSIONROOM_DEMO]",
    )

    link = sub.add_parser("link", help="mint a link offline, signed with the same secret")
    add_arguments(link)
    link.add_argument("--room", required=True, help="room id (letters, digits, - and _)")
    link.add_argument("--role", required=True, choices=[r.value for r in Role])
    link.add_argument("--name", required=True, help="the participant's display name")
    link.add_argument("--valid-for", type=parse_duration, default=2 * 3600.0, help="e.g. 2h")
    link.add_argument("--not-before", type=parse_time, help="ISO 8601 start (default: now)")
    link.add_argument("--max-clients", type=int, default=1, help="1 to 3, for a new room")
    link.add_argument("--waiting-room", choices=["on", "off"], default="on")
    link.add_argument("--recording", choices=[m.value for m in RecordingMode], default="off")
    link.add_argument("--sub", help="the practice's own id for this person (default: random)")
    link.add_argument(
        "--permissions",
        type=_permissions,
        help="fewer permissions than the role's, comma-separated (e.g. chat for a chat-only "
        "client; a therapist's without record)",
    )

    recordings = sub.add_parser("recordings", help="list recordings, or verify one")
    what = recordings.add_subparsers(dest="recordings_command", required=True)
    verify_cmd = what.add_parser(
        "verify", help="check a recording's files and consent against the ledger"
    )
    add_arguments(verify_cmd)
    verify_cmd.add_argument("id", help="the recording's id, rec-YYYYMMDD-HHMMSS-xxxxxx")
    list_cmd = what.add_parser("list", help="the recordings, newest first")
    add_arguments(list_cmd)
    list_cmd.add_argument("--room", help="only this room's recordings")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args, os.environ)
        if args.command == "serve":
            if args.demo:
                # The demo is local development: let the recording leg work on this machine
                # alone, even with no network but loopback.
                settings = replace(settings, ice_loopback=True)
            return serve(settings, demo=args.demo)
        if args.command == "recordings":
            return recordings_command(settings, args)
        return mint(settings, args)
    except SessionroomError as e:
        print(f"sessionroom: {e.message}", file=sys.stderr)
        return 2


def mint(settings: Settings, args: argparse.Namespace) -> int:
    resolved = resolve_secret(settings)
    _say_where_the_secret_is(resolved)
    keys = key_ring(settings, resolved)
    start = int(args.not_before if args.not_before is not None else time.time())
    token = keys.mint(
        room=args.room,
        role=Role(args.role),
        name=args.name,
        not_before=start,
        expires=start + int(args.valid_for),
        identity=args.sub,
        permissions=args.permissions,
        room_settings=RoomSettings(
            max_clients=args.max_clients,
            waiting_room=args.waiting_room == "on",
            recording=RecordingMode(args.recording),
        ),
    )
    print(link_url(settings.public_url, token))
    return 0


def recordings_command(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return _recordings(settings.recordings_path, args)
    except OSError as e:  # e.g. run as a user who may not read the server's recordings
        print(f"sessionroom: cannot read the recordings: {e}", file=sys.stderr)
        return 2


def _recordings(root: Path, args: argparse.Namespace) -> int:
    if args.recordings_command == "verify":
        checks = verify(root, args.id)
        for ok, what in checks:
            print(f"{'ok' if ok else 'FAIL'}: {what}")
        return 0 if all(ok for ok, _ in checks) else 1
    storage = RecordingStorage(root, FileLedger(root / LEDGER_FILE))
    manifests = storage.list(args.room)
    for m in manifests:
        files = ", ".join(f"{f.name} {f.duration:.1f}s" for f in m.files) or "no files"
        print(f"{m.id}  room {m.room}  {m.status}  started {when(m.started_at)}  {files}")
    if not manifests:
        print(f"No recordings in {root}.", file=sys.stderr)
    return 0


def _say_where_the_secret_is(resolved: ResolvedSecret) -> None:
    if resolved.created:
        print(
            f"Created a signing secret in {resolved.path} (mode 0600). "
            "Set SESSIONROOM_SECRET to use your own.",
            file=sys.stderr,
            flush=True,
        )
    elif resolved.path is not None:
        print(f"Using the signing secret in {resolved.path}.", file=sys.stderr, flush=True)


def serve(settings: Settings, *, demo: bool) -> int:
    logs.configure(settings.log_format, settings.log_level)
    resolved = resolve_secret(settings)
    _say_where_the_secret_is(resolved)
    app = create_app(settings, key_ring(settings, resolved))
    asyncio.run(_serve(app, settings, demo=demo))
    return 0


async def _serve(app: web.Application, settings: Settings, *, demo: bool) -> None:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    metrics_runner: web.AppRunner | None = None
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        if settings.metrics_port:
            metrics_runner = web.AppRunner(ops.metrics_app(app), access_log=None)
            await metrics_runner.setup()
            host, port = settings.metrics_host, settings.metrics_port
            await web.TCPSite(metrics_runner, host, port).start()
            print(f"Metrics are at http://{host}:{port}/metrics", flush=True)
        # Only now is the port open, so the links printed below work when they appear.
        print(f"Sessionroom is listening on http://{settings.host}:{settings.port}", flush=True)
        if not settings.api_keys:
            print("No API keys configured (SESSIONROOM_API_KEYS): the REST API is closed.")
        if demo:
            await _print_demo_links(app)
        # What exists now (modules, the app) lives as long as the process: keep the garbage
        # collector's full passes, which stall every socket, from walking it again and again.
        gc.freeze()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        # Tells every socket `server_shutdown`, then stops the background tasks.
        await runner.cleanup()


async def _print_demo_links(app: web.Application) -> None:
    service = app[SERVICE]
    settings = RoomSettings(recording=RecordingMode.CONSENT)
    room_id = service.new_room_id()
    therapist, client = (
        service.link(room_id, role, name, valid_for=DEMO_VALID_FOR, settings=settings)
        for role, name in ((Role.THERAPIST, "Therapist"), (Role.CLIENT, "Client"))
    )
    room = await service.create_room(settings, room_id=room_id, expires_at=client.expires)
    print(f"Demo room {room.id} (links valid for 8 hours):", flush=True)
    print(f"  therapist link: {therapist.url}", flush=True)
    print(f"  client link:    {client.url}", flush=True)
    where = app[SETTINGS].recordings_path
    print(f"Recordings, made only when everyone says yes, go to {where}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
