"""Protocol fuzzing: generated and mutated /ws messages against real `sessionroom serve`
processes, every socket's receipts checked for deliveries across rooms.

Two modes, each against its own fresh processes on 127.0.0.1:
  1 node   one node on the in-memory store and bus;
  2 nodes  nodes A and B sharing a private redis-server (a Unix socket in a temporary
           folder, no TCP, no persistence); each socket picks a node at random.

Flow per mode: rooms ("slots") with random settings get therapists and clients that join
with links minted here (the nodes share SESSIONROOM_SECRET); therapists admit some of the
waiting clients; then every socket sends a mix of valid messages, valid-but-out-of-order
ones (admits of unknown ids, signals to other rooms' participants, consents to wrong
requests, rec_offers with garbage SDP), every message type of docs/protocol.md with fields
dropped, retyped, added, huge or deeply nested, raw garbage (deep brackets, random text and
bytes, NaN, truncated JSON), binary frames and bursts past the rate limit. Fresh sockets send
garbage and bad links before any join. A socket that the server closes (leave, end, denied,
too large, ...) joins again, resuming or with a new link; an ended room is replaced by a new
one. The generator's choices come from the seed; the servers' timing does not repeat.

Rate limits: the nodes keep their defaults (a burst of 50, then 50 a second per socket)
unless --rate-burst / --rate-per-second say otherwise; the load is spread over enough sockets
(about 175), each paced under the limit (--socket-rate, 35 frames a second), so that
rate_limited comes from the deliberate bursts, a few percent of the refusals.

Afterwards a fresh therapist and client join another room, the client is admitted, and they
exchange a signal and a chat: all of it must work. Every message every socket received is
then checked: one that names a participant or room of another room is a cross-room delivery.

Printed per mode: messages sent, refusals by error code, internal_error count, tracebacks in
each node's log (with the log line, the project's innermost frame and the exception),
cross-room deliveries, RSS and log size before and after, messages/s, and for the first few
sockets that got internal_error, or lost their connection without a close frame, what they
sent and received just before. tests/integration/test_fuzz.py runs a bounded version.

Run from the project root (the nodes listen on 127.0.0.1 only):

  .venv/bin/python -m bench.fuzz [--messages 100000] [--nodes 1|2] [--seed N]
  unshare --net -- bash -c 'ip link set lo up && .venv/bin/python -m bench.fuzz'
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import random
import re
import secrets
import signal
import string
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bench.common import (
    CANDIDATE,
    BenchError,
    RedisServer,
    Server,
    argument_parser,
    bench_node,
    client_session,
    raise_nofile_limit,
    rss_kib,
    stop_node,
    stop_redis,
)
from signaling.config import Settings
from signaling.core.model import RecordingMode, Role, RoomSettings
from signaling.tokens import ISSUER, KeyRing

WebSocket = aiohttp.ClientWebSocketResponse
Json = Any

# Every inbound type of docs/protocol.md.
INBOUND_TYPES = (
    "join",
    "admit",
    "deny",
    "allow",
    "lobby_notice",
    "signal",
    "chat",
    "leave",
    "end",
    "recording_request",
    "recording_stop",
    "consent",
    "rec_offer",
)
# Keys whose values are free text or relayed as is (a signal's `data`): the fuzz puts other
# rooms' ids there on purpose, so they say nothing about where the server delivered.
FREE_TEXT_KEYS = frozenset(
    {"text", "message", "notice", "name", "sdp", "resume", "where", "ice_servers", "permissions"}
)
ID_ALPHABET = string.ascii_letters + string.digits + "-_"
ODD_TEXT = (
    "",
    " ",
    "\u0000",
    "\u202e",
    "\u200b",
    "\U0001f600",
    "\u00e9",
    "\ud800",
    "\udfff",
    "<script>alert(1)</script>",
    "'",
    '"',
    "\\",
    "%s%n",
    "{}",
    "\n",
    "\t",
    "\r\n",
    "\x7f",
    "${jndi:x}",
)
# Sizes in UTF-8 bytes around every limit: ids (64), resume (200), notice (500), chat
# (2,000), SDP (32 KiB), a message (64 KiB) and the socket's hard limit (256 KiB, rarely).
HUGE_BYTES = (65, 201, 501, 2001, 8193, 32 * 1024 + 1, 65_400, 65_536, 65_700, 120_000)
PAST_HARD_LIMIT = 300_000
OTHER_SECRET = b"fuzz-some-other-secret-that-is-long-enough-0123"
# How long a join, an expected reply or a close may take before the run says so.
REPLY_TIMEOUT = 30.0
# Sockets per client address (127.1.x.y, bench.common.client_session), under the nodes'
# cap per address; the groups of sockets before any join, silent ones and the fresh room.
SOCKETS_PER_ADDRESS = 25
PREJOIN_GROUP = 900
SILENT_GROUP = 950
FRESH_GROUP = 990
# A message type no server knows: its refusal names it (drain()).
MARKER = "fuzz-marker"
# Frames sent after the fuzz: the markers and the fresh room's.
NOT_FUZZ_LABELS = ("marker:", "fresh:")
# Errors whose sockets' recent history the report prints (the first MAX_STORIES).
NOTABLE_CODES = frozenset({"internal_error", "service_unavailable"})
MAX_STORIES = 8
MAX_ABNORMAL_STORIES = 3
# The nodes' own defaults (rate limits, join timeout), for the flags and the report.
DEFAULTS = Settings(node_id="defaults")
# Where the project's own code is, to find its frames in a traceback.
PROJECT = Path(__file__).resolve().parents[1]


# ---- frames ----


@dataclass(frozen=True)
class Frame:
    """One WebSocket frame to send. `label` is "<category>:<detail>" for the tally; `kind`
    the inbound type it was built from, if any."""

    label: str
    data: bytes
    binary: bool = False
    kind: str = ""


@dataclass
class View:
    """What one socket knows of its own room: the generator builds messages from it."""

    room: str
    role: Role
    token: str
    admit_rate: float = 0.5
    me: str = ""
    in_room: bool = False
    resume: str = ""
    peers: set[str] = field(default_factory=set)
    waiting: list[str] = field(default_factory=list)
    request: str = ""
    recording: str = ""

    def learn(self, msg: dict[str, Any]) -> None:
        """Follow the room from what the server sent this socket."""
        kind = msg.get("type")
        if kind == "joined":
            self.me = str(msg["participant"]["id"])
            self.in_room = msg.get("state") == "in_room"
            self.resume = str(msg.get("resume", ""))
            self.peers = {str(p["id"]) for p in msg.get("peers", [])}
            self.waiting = [str(w["id"]) for w in msg.get("lobby", [])]
            gate = msg.get("recording") or {}
            self.request = str(gate.get("request") or "")
            self.recording = str(gate.get("recording") or "")
        elif kind == "admitted":
            self.in_room = True
            self.peers = {str(p["id"]) for p in msg["peers"]}
        elif kind == "peer_joined":
            self.peers.add(str(msg["participant"]["id"]))
        elif kind == "peer_left":
            self.peers.discard(str(msg["participant"]))
        elif kind == "lobby":
            self.waiting = [str(w["id"]) for w in msg["waiting"]]
        elif kind == "consent_request":
            self.request = str(msg["request"])
        elif kind == "recording_state":
            self.request = str(msg.get("request") or self.request)
            self.recording = str(msg.get("recording") or self.recording)


def _encode(rng: random.Random, msg: Json) -> bytes:
    """JSON text as UTF-8; escaped to ASCII when it holds lone surrogates (not UTF-8)."""
    text = json.dumps(msg, ensure_ascii=rng.random() < 0.5)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(msg).encode()


class MessageGenerator:
    """Valid, out-of-order, mutated and garbage frames, from one random generator.

    `strangers(room)` gives a participant id of another room (or "" when there is none).
    """

    def __init__(self, rng: random.Random, strangers: Callable[[str], str]) -> None:
        self.rng = rng
        self._strangers = strangers

    # -- values --

    def word(self, n: int = 8) -> str:
        return "".join(self.rng.choices(ID_ALPHABET, k=n))

    def text(self, limit: int = 40) -> str:
        rng = self.rng
        parts = [
            rng.choice(ODD_TEXT) if rng.random() < 0.3 else self.word(rng.randint(1, 12))
            for _ in range(rng.randint(1, 6))
        ]
        text = " ".join(parts)[:limit]
        return text if text.strip() else "hello"

    def huge(self, size: int | None = None) -> tuple[str, str]:
        """A string of about `size` UTF-8 bytes, and its size bucket for the label."""
        rng = self.rng
        if size is None:
            size = PAST_HARD_LIMIT if rng.random() < 0.02 else rng.choice(HUGE_BYTES)
        unit = rng.choice(("x", "\u00e9", "\U0001f600"))
        return unit * max(1, size // len(unit.encode())), f"{size}B"

    def stranger(self, room: str) -> str:
        return self._strangers(room) or self.word(12)

    def value(self, depth: int = 0, finite: bool = False) -> Json:
        """Any JSON value (NaN and the infinities too, unless `finite`), nested a little."""
        rng = self.rng
        pick = rng.randrange(16 if depth < 2 else 13)
        if pick == 0:
            return None
        if pick == 1:
            return rng.random() < 0.5
        if pick == 2:
            return rng.choice((0, -1, 1, 2**31, 2**53 + 1, 2**64, 10**30, -(10**30)))
        if pick == 3:
            return rng.choice((0.5, -0.0, 1e308, 5e-324, -1.5))
        if pick == 4:
            return 0.25 if finite else rng.choice((float("nan"), float("inf"), float("-inf")))
        if pick in (5, 6):
            return self.text()
        if pick == 7:
            return self.word(12)
        if pick == 8:
            return rng.choice(ODD_TEXT)
        if pick == 9:
            return ""
        if pick == 10:
            return []
        if pick == 11:
            return {}
        if pick == 12:
            return self.stranger("")
        if pick in (13, 14):
            return [self.value(depth + 1, finite) for _ in range(rng.randint(1, 4))]
        return {self.word(5): self.value(depth + 1, finite) for _ in range(rng.randint(1, 4))}

    def sdp(self) -> str:
        rng = self.rng
        lines = [
            "v=0",
            "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0 1",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "c=IN IP4 0.0.0.0",
            "a=rtpmap:111 opus/48000/2",
            "a=sendonly",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "a=rtpmap:96 VP8/90000",
            "a=ice-ufrag:" + self.word(4),
            "a=fingerprint:sha-256 " + ":".join(f"{rng.randrange(256):02X}" for _ in range(32)),
            "a=candidate:" + CANDIDATE,
        ]
        how = rng.randrange(5)
        if how == 0:  # lines dropped and shuffled
            kept = lines[1:]
            rng.shuffle(kept)
            lines = ["v=0", *kept[: rng.randint(0, len(kept))]]
        elif how == 1:  # one line replaced by garbage
            i = rng.randrange(1, len(lines))
            lines[i] = self.text(80)
        elif how == 2:
            lines = ["v=0", self.text(200)]
        elif how == 3:
            lines = ["v=0" + self.rng.randbytes(40).hex()]
        sep = rng.choice(("\r\n", "\n", "\r", ""))
        return sep.join(lines)

    def signal_data(self) -> dict[str, Json]:
        rng = self.rng
        gen = rng.choice((0, 1, 7, -1))
        kind = rng.choice(("description", "candidate", "state", "reset", "other"))
        if kind == "description":
            sdp = self.sdp()
            return {"kind": kind, "gen": gen, "description": {"type": "offer", "sdp": sdp}}
        if kind == "candidate":
            cand = {"candidate": CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0}
            return {"kind": kind, "gen": gen, "candidate": cand}
        if kind == "state":
            return {"kind": kind, "gen": gen, "audio": True, "video": False, "wantsVideo": True}
        if kind == "reset":
            return {"kind": kind, "gen": gen}
        return {self.word(5): self.value(1, finite=True) for _ in range(rng.randint(0, 4))}

    # -- message templates: a well-formed message of each type, for this socket --

    def template(self, kind: str, view: View) -> dict[str, Json]:
        rng = self.rng
        if kind == "join":
            msg: dict[str, Json] = {"type": "join", "token": view.token}
            if view.resume and rng.random() < 0.5:
                msg["resume"] = view.resume
            return msg
        if kind in ("admit", "deny"):
            who = rng.choice(view.waiting) if view.waiting else self.stranger(view.room)
            msg = {"type": kind, "participant": who}
            if kind == "deny" and rng.random() < 0.7:
                msg["message"] = self.text(60)
            return msg
        if kind == "allow":
            # Nobody this socket knows was turned away: someone unknown, or a waiting id.
            who = rng.choice(view.waiting) if view.waiting else self.stranger(view.room)
            return {"type": kind, "participant": who}
        if kind == "lobby_notice":
            return {"type": kind, "text": self.text(80) if rng.random() < 0.9 else ""}
        if kind == "signal":
            to = rng.choice(sorted(view.peers)) if view.peers else self.stranger(view.room)
            return {"type": kind, "to": to, "data": self.signal_data()}
        if kind == "chat":
            return {"type": kind, "text": self.text(120)}
        if kind == "consent":
            request = view.request or "q-" + self.word(8)
            return {"type": kind, "request": request, "granted": rng.random() < 0.8}
        if kind == "rec_offer":
            recording = view.recording or "rec-" + self.word(10)
            return {"type": kind, "recording": recording, "sdp": self.sdp()}
        return {"type": kind}

    def frame(self, label: str, msg: Json, kind: str = "") -> Frame:
        return Frame(label, _encode(self.rng, msg), kind=kind)

    # -- what a joined socket sends --

    def frames(self, view: View) -> list[Frame]:
        rng = self.rng
        category = rng.choices(
            ("valid", "disorder", "mutated", "garbage", "binary", "burst"),
            weights=(24, 18, 30, 17, 5, 0.1),
        )[0]
        if category == "valid":
            return [self.valid(view)]
        if category == "disorder":
            return [self.disorder(view)]
        if category == "mutated":
            return [self.mutated(view)]
        if category == "garbage":
            return [self.garbage(view)]
        if category == "binary":
            return [self.binary()]
        return self.burst(view)

    def valid(self, view: View) -> Frame:
        """A message that fits this socket's role and state (most of the time)."""
        rng = self.rng
        weights: dict[str, float]
        if view.role is Role.THERAPIST:
            weights = {
                "chat": 15,
                "signal": 20 if view.peers else 0,
                "lobby_notice": 6,
                "admit": 25 * view.admit_rate if view.waiting else 0,
                "deny": 1 if view.waiting else 0,
                "recording_request": 3,
                "recording_stop": 2,
                "consent": 4,
                "rec_offer": 1,
                "join": 1,
                "leave": 0.5,
                "end": 0.08,
            }
        else:
            weights = {
                "chat": 25,
                "signal": 25 if view.peers else 2,
                "consent": 6,
                "rec_offer": 1,
                "join": 1,
                "leave": 0.6,
            }
        kinds = [k for k, w in weights.items() if w > 0]
        kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
        return self.frame(f"valid:{kind}", self.template(kind, view), kind)

    def disorder(self, view: View) -> Frame:
        """A well-formed message in the wrong place: other rooms' ids, wrong requests."""
        rng = self.rng
        kinds = ["admit", "deny", "signal", "consent", "rec_offer", "recording_stop", "join"]
        kinds += ["lobby_notice", "recording_request", "chat", "allow"]
        if view.role is Role.CLIENT:
            kinds.append("end")  # forbidden to a client; a therapist's would end the room
        kind = rng.choice(kinds)
        msg = self.template(kind, view)
        whose = rng.choice(("stranger", "stranger", "own", "peer", "waiting", "random", "unicode"))
        ids = {
            "stranger": self.stranger(view.room),
            "own": view.me,
            "peer": rng.choice(sorted(view.peers)) if view.peers else self.word(12),
            "waiting": rng.choice(view.waiting) if view.waiting else self.word(12),
            "random": self.word(rng.choice((1, 12, 64))),
            "unicode": "\u043a\u043b\u0438\u0435\u043d\u0442-" + self.word(4),
        }
        someone = ids[whose] or self.word(12)
        detail = kind
        if kind in ("admit", "deny", "allow"):
            msg["participant"] = someone
            detail = f"{kind}_{whose}"
        elif kind == "signal":
            msg["to"] = someone
            detail = f"signal_{whose}"
        elif kind == "consent":
            msg["request"] = rng.choice(("q-" + self.word(8), someone, view.recording or "x"))
        elif kind == "rec_offer":
            msg["recording"] = rng.choice((view.recording, "rec-" + self.word(10), someone))
        elif kind == "join":
            msg = {"type": "join", "token": view.token, "resume": f"{someone}.{self.word(32)}"}
            detail = "join_again"
        return self.frame(f"disorder:{detail}", msg, kind)

    def mutated(self, view: View, kind: str | None = None) -> Frame:
        """A message of one type with fields dropped, retyped, added, huge or nested."""
        rng = self.rng
        if kind is None:
            weights = [0.1 if k in ("end", "leave") else 1.0 for k in INBOUND_TYPES]
            kind = rng.choices(INBOUND_TYPES, weights=weights)[0]
        msg: dict[str, Json] = self.template(kind, view)
        op = rng.choice(
            ("drop", "retype", "extra", "huge", "nested", "type_variant", "nan", "dup_keys")
        )
        keys = [k for k in msg if k != "type"] or ["type"]
        key = rng.choice(keys)
        nest = ""
        label = op
        ascii_only = rng.random() < 0.5
        if op == "drop":
            del msg[rng.choice([*keys, "type"])]
        elif op == "retype":
            msg[key] = self.value()
        elif op == "extra":
            for _ in range(rng.randint(1, 5)):
                name = rng.choice(("from", "room", "participant", "__proto__", "type2", "id"))
                msg[name if rng.random() < 0.5 else self.word(6)] = self.value()
        elif op == "huge":
            msg[key], size = self.huge()
            label = f"huge_{size}"
            ascii_only = False  # sizes are counted in UTF-8 bytes, unescaped
        elif op == "nested":
            depth = rng.choice((10, 100, 900, 990, 1000, 1100, 3000, 20_000))
            opener = rng.choice(("[", '{"a":'))
            closer = "]" if opener == "[" else "}"
            balanced = rng.random() < 0.5
            nest = opener * depth + ("1" + closer * depth if balanced else "")
            msg[key] = "\x00NEST\x00"
            label = f"nested_{depth}{'' if balanced else '_open'}"
        elif op == "type_variant":
            msg["type"] = rng.choice(
                (
                    kind.upper(),
                    f" {kind}",
                    f"{kind}\u0000",
                    kind.replace("a", "\u0430"),
                    "",
                    kind * 200,
                    None,
                    7,
                    [kind],
                    {"type": kind},
                    "__proto__",
                    "constructor",
                )
            )
        elif op == "nan":
            msg[key if key != "type" else "n"] = rng.choice(
                (float("nan"), float("inf"), float("-inf"))
            )
        text = json.dumps(msg, ensure_ascii=ascii_only)
        if nest:
            text = text.replace('"\\u0000NEST\\u0000"', nest).replace('"\x00NEST\x00"', nest)
        if op == "dup_keys":
            other = rng.choice(INBOUND_TYPES)
            text = text[:-1] + f', "type": "{other}", "participant": "{self.word(12)}"}}'
        try:
            data = text.encode()
        except UnicodeEncodeError:
            data = text.encode("utf-8", "backslashreplace")
        return Frame(f"mutated:{label}", data, kind=kind)

    def garbage(self, view: View) -> Frame:
        """Text frames that are not a protocol message, or barely."""
        rng = self.rng
        what = rng.choices(
            (
                "deep_open",
                "deep_in_message",
                "deep_relayed",
                "random_text",
                "invalid_utf8",
                "scalar",
                "nan",
                "bignum",
                "truncated",
                "padded",
                "huge",
            ),
            weights=(3, 2, 2, 3, 0.5, 2, 2, 1, 2, 1, 1.5),
        )[0]
        if what == "deep_open":
            n = rng.choice((100, 999, 1000, 5000, 60_000))
            return Frame(f"garbage:deep_{n}", (rng.choice(("[", '{"a":', "[{}, ")) * n).encode())
        if what == "deep_in_message":
            n = rng.choice((500, 1000, 5000))
            head = json.dumps(self.template(rng.choice(INBOUND_TYPES), view))[:-1]
            return Frame(f"garbage:deep_in_message_{n}", f'{head}, "x": {"[" * n}'.encode())
        if what == "deep_relayed":
            # A valid signal to a real peer whose data is nested deep: relayed if accepted.
            n = rng.choice((50, 400, 800, 900, 950, 980, 990, 1000))
            to = rng.choice(sorted(view.peers)) if view.peers else self.stranger(view.room)
            inner = "[" * n + "]" * n
            data = f'{{"kind": "x", "d": {inner}}}'
            text = f'{{"type": "signal", "to": {json.dumps(to)}, "data": {data}}}'
            return Frame(f"garbage:deep_relayed_{n}", text.encode(), kind="signal")
        if what == "random_text":
            n = rng.choice((1, 10, 100, 1000))
            chars = "".join(
                chr(rng.choice((rng.randrange(32, 127), rng.randrange(0xA0, 0xD800))))
                for _ in range(n)
            )
            return Frame("garbage:random_text", chars.encode())
        if what == "invalid_utf8":
            # Not UTF-8 in a text frame: the WebSocket layer closes the socket (1007).
            return Frame(
                "garbage:invalid_utf8",
                b'{"type": "chat", "text": "\xff\xfe' + rng.randbytes(8) + b'"}',
            )
        if what == "scalar":
            text = rng.choice(
                ("null", "1", '"join"', "[]", "true", "{}", '{"type": null}', "", " ", "[1, 2]")
            )
            return Frame("garbage:scalar", text.encode())
        if what == "nan":
            peer = json.dumps(rng.choice(sorted(view.peers)) if view.peers else "x")
            text = rng.choice(
                (
                    "NaN",
                    "Infinity",
                    '{"type": "chat", "text": "hi", "n": NaN}',
                    '{"type": "consent", "request": "q-1", "granted": Infinity}',
                    f'{{"type": "signal", "to": {peer}, "data": {{"n": NaN, "m": -Infinity}}}}',
                )
            )
            return Frame("garbage:nan", text.encode(), kind="signal" if "signal" in text else "")
        if what == "bignum":
            digits = rng.choice((400, 4300, 4301, 20_000))
            text = f'{{"type": "chat", "text": "hi", "n": {"9" * digits}}}'
            if rng.random() < 0.5:
                text = f'{{"type": "admit", "participant": "x", "n": 1e{"9" * digits}}}'
            return Frame(f"garbage:bignum_{digits}", text.encode())
        if what == "truncated":
            text = json.dumps(self.template(rng.choice(INBOUND_TYPES), view))
            return Frame("garbage:truncated", text[: rng.randrange(len(text))].encode())
        if what == "padded":
            text = json.dumps(self.template(rng.choice(("chat", "signal", "lobby_notice")), view))
            pad = rng.choice(("\ufeff", " \n\t", "\u00a0", "\u0000"))
            return Frame("garbage:padded", (pad + text + pad).encode())
        body, size = self.huge()
        return Frame(f"garbage:huge_{size}", body.encode())

    def binary(self) -> Frame:
        rng = self.rng
        what = rng.choice(("random", "json", "empty"))
        if what == "random":
            return Frame("binary:random", rng.randbytes(rng.choice((1, 16, 1000))), binary=True)
        if what == "json":
            return Frame("binary:json", b'{"type": "chat", "text": "binary"}', binary=True)
        return Frame("binary:empty", b"", binary=True)

    def burst(self, view: View) -> list[Frame]:
        """More than the rate limit's burst, back to back: text, or binary frames only."""
        rng = self.rng
        n = rng.randint(55, 90)
        if rng.random() < 0.5:
            return [Frame("burst:binary", b"\x00\x01", binary=True) for _ in range(n)]
        chat = {"type": "chat", "text": "burst"}
        return [self.frame("burst:text", chat, "chat") for _ in range(n)]


# ---- links, good and bad ----


class Minter:
    """Link tokens for the fuzz: valid ones, and every way one can be wrong."""

    def __init__(self, secret: bytes, rng: random.Random) -> None:
        self.keys = KeyRing(secret)
        self._secret = secret
        self._other = KeyRing(OTHER_SECRET)
        self.rng = rng

    def link(self, room: str, role: Role, settings: RoomSettings | None = None) -> str:
        now = int(time.time())
        name = f"Fuzz {role} {self.rng.randrange(1000)}"
        return self.keys.mint(
            room=room,
            role=role,
            name=name,
            not_before=now - 5,
            expires=now + 3600,
            room_settings=settings,
        )

    def bad(self, room: str) -> tuple[str, Json]:
        """A join's `token` that must be refused, and its label."""
        rng = self.rng
        now = int(time.time())
        how = rng.choice(
            (
                *("expired", "future", "other_secret", "alg_none", "tampered", "claims"),
                *("claims", "claims", "garbage", "retyped", "long", "unknown_kid"),
            )
        )
        if how == "expired":
            return how, self.keys.mint(
                room=room, role=Role.CLIENT, name="Late", not_before=now - 7200, expires=now - 3600
            )
        if how == "future":
            return how, self.keys.mint(
                room=room, role=Role.CLIENT, name="Early", not_before=now + 3600, expires=now + 7200
            )
        if how == "other_secret":
            return how, self._other.mint(
                room=room, role=Role.THERAPIST, name="Mallory", not_before=now, expires=now + 60
            )
        if how == "alg_none":
            claims = self._claims(room, now)
            head = {"alg": "none", "kid": self.keys.signing_kid, "typ": "JWT"}
            return how, f"{_b64(head)}.{_b64(claims)}."
        if how == "tampered":
            header, payload, sig = self.link(room, Role.CLIENT).split(".")
            i = rng.randrange(len(payload))
            payload = payload[:i] + rng.choice("AB_-") + payload[i + 1 :]
            return how, f"{header}.{payload}.{sig}"
        if how == "claims":
            claims = self._claims(room, now)
            name = rng.choice([*claims, "perms", "settings", "extra"])
            if rng.random() < 0.3:
                claims.pop(name, None)
                return f"claims_drop_{name}", self._sign(claims)
            claims[name] = self._odd_claim(name)
            return f"claims_{name}", self._sign(claims)
        if how == "garbage":
            return how, rng.choice(("", ".", "..", "a.b.c", "e30.e30.e30", "\u0000", "x" * 100))
        if how == "retyped":
            return how, rng.choice((None, 42, True, [], {}, 1.5, float("nan")))
        if how == "long":
            return how, "a" * 8193
        head = {"alg": "HS256", "kid": "0123456789abcdef"}
        return how, f"{_b64(head)}.{_b64(self._claims(room, now))}.c2ln"

    def _claims(self, room: str, now: int) -> dict[str, Json]:
        return {
            "iss": ISSUER,
            "room": room,
            "role": "client",
            "sub": "fuzz-" + secrets.token_hex(4),
            "name": "Fuzz",
            "nbf": now - 5,
            "exp": now + 3600,
            "jti": secrets.token_urlsafe(9),
            "perms": ["chat", "consent", "signal"],
            "settings": {"max_clients": 1, "waiting_room": True, "recording": "off"},
        }

    def _odd_claim(self, name: str) -> Json:
        rng = self.rng
        odd: dict[str, tuple[Json, ...]] = {
            "role": ("admin", "THERAPIST", None, 1, ["client"]),
            "room": ("", "a" * 65, "room with spaces", "../etc", 7, None, ["r"], "r\ud800"),
            "perms": (["admit"], ["fly"], "chat", 1, {"chat": 1}, [None], [["chat"]]),
            "settings": (
                [],
                "on",
                {"max_clients": 99},
                {"max_clients": True},
                {"waiting_room": "yes"},
                {"recording": "always"},
                {"recording": ["off"]},
                {"recording": {}},
                {"extra": 1},
                {"max_clients": 1.5},
            ),
            "nbf": ("now", None, float("inf"), float("nan"), 1e300, -(10**30), [1]),
            "exp": ("later", None, float("inf"), float("nan"), 1e300, 10**30, {}),
            "name": ("", " ", "x" * 65, 5, None, ["n"], "\u0000", "\ud800", "\u202e"),
            "sub": ("", "x" * 129, 5, None, "\udfff"),
            "jti": (None, 5, [], {"a": 1}, "x" * 5000),
            "iss": ("evil", None, 5),
        }
        return rng.choice(odd.get(name, (None, 1, [], {}, "x")))

    def _sign(self, claims: dict[str, Json]) -> str:
        # Signed by hand: PyJWT refuses to encode some of these claims (a non-text `iss`).
        head = _b64({"alg": "HS256", "typ": "JWT", "kid": self.keys.signing_kid})
        signing_input = f"{head}.{_b64(claims)}"
        mac = hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _b64(value: Json) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


# ---- what was sent and received ----


@dataclass
class Tally:
    """Everything counted over one run: frames sent, replies, closes and joins."""

    sent: Counter[str] = field(default_factory=Counter)
    kinds_sent: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    received: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    joins: Counter[str] = field(default_factory=Counter)
    # Labels of the frames sent just before each internal_error on the same socket.
    culprits: Counter[str] = field(default_factory=Counter)
    # The first few sockets that got an error worth a look: what they sent and saw.
    stories: list[str] = field(default_factory=list)
    abnormal: list[str] = field(default_factory=list)  # the same, for closes with no frame
    unsent: int = 0  # the socket was closing: counted as sent, never written
    markers_unanswered: int = 0
    unparsable: int = 0
    binary_received: int = 0
    sockets: int = 0
    connect_failures: int = 0


class Registry:
    """Which participant and room ids belong to which room, every socket opened, and the
    tally. Ids come only from each socket's own `joined`, under the room of the link it
    used, never from what other sockets were told."""

    def __init__(self) -> None:
        self.room_of: dict[str, str] = {}
        self.rooms: set[str] = set()
        self._ids: list[str] = []
        self.conns: list[Conn] = []
        self.tally = Tally()

    def add_participant(self, participant: str, room: str) -> None:
        if participant not in self.room_of:
            self._ids.append(participant)
        self.room_of.setdefault(participant, room)

    def stranger(self, rng: random.Random, room: str) -> str:
        for _ in range(4):
            if not self._ids:
                return ""
            pid = self._ids[rng.randrange(len(self._ids))]
            if self.room_of[pid] != room:
                return pid
        return ""


class Conn:
    """One WebSocket and its reader task: every message it receives is kept (errors only
    counted), its `View` follows the room, and its close is recorded."""

    def __init__(
        self,
        ws: WebSocket,
        room: str,
        registry: Registry,
        view: View | None = None,
        on_ended: Callable[[str], None] | None = None,
    ) -> None:
        self.ws = ws
        self.room = room
        self.registry = registry
        self.view = view
        self._on_ended = on_ended
        self.messages: list[dict[str, Any]] = []
        self.errors: Counter[str] = Counter()
        self.last_error = ""
        self.recent: deque[str] = deque(maxlen=3)
        # The last few messages received, errors by code: for the report's stories.
        self.trail: deque[str] = deque(maxlen=6)
        self.joined = asyncio.Event()
        self.closed = asyncio.Event()
        self.arrived = asyncio.Event()
        self.closing = False  # this side closes: not a close by the server
        self.close_code: int | None = None
        self.close_reason = ""
        registry.conns.append(self)
        registry.tally.sockets += 1
        self.task = asyncio.create_task(self._read())

    async def send(self, frame: Frame) -> bool:
        tally = self.registry.tally
        tally.sent[frame.label] += 1
        if frame.kind:
            tally.kinds_sent[frame.kind] += 1
        self.recent.append(frame.label)
        if self.ws.closed:
            tally.unsent += 1
            return False
        opcode = aiohttp.WSMsgType.BINARY if frame.binary else aiohttp.WSMsgType.TEXT
        try:
            await self.ws.send_frame(frame.data, opcode)
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            tally.unsent += 1
            return False
        return True

    def story(self, code: str) -> str:
        """What this socket did and saw before an error worth a look."""
        who = f"{self.view.role} {self.view.me or '(not joined)'}" if self.view else "a socket"
        return (
            f"{code} to {who} in room {self.room or '-'}:"
            f" sent {list(self.recent)}, received {list(self.trail)}"
        )

    async def drain(self, marker: str, within: float = REPLY_TIMEOUT) -> bool:
        """Send `marker` as a message type and wait for the refusal that names it: all that
        the server queued for this socket before it has then arrived. A closed socket has
        nothing more to come. False if no answer came in time."""
        deadline = time.monotonic() + within
        frame = Frame("marker:unknown_type", json.dumps({"type": marker}).encode())
        while time.monotonic() < deadline and not self.closed.is_set():
            await self.send(frame)
            # Sent again if not answered soon: it may have been refused as rate_limited.
            left = min(0.25, deadline - time.monotonic())
            if await self.wait_for(lambda m: marker in str(m.get("message")), left):
                return True
        return self.closed.is_set()

    async def close(self) -> None:
        self.closing = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.ws.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.task

    async def wait_for(
        self, match: Callable[[dict[str, Any]], bool], within: float = REPLY_TIMEOUT
    ) -> dict[str, Any] | None:
        """The first message received so far, or within `within` seconds, that matches."""
        deadline = asyncio.get_running_loop().time() + within
        seen = 0
        while True:
            for msg in self.messages[seen:]:
                if match(msg):
                    return msg
            seen = len(self.messages)
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0 or self.closed.is_set():
                return None
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self.arrived.wait()

    async def _read(self) -> None:
        tally = self.registry.tally
        try:
            while True:
                raw = await self.ws.receive()
                if raw.type is aiohttp.WSMsgType.TEXT:
                    self._handle(str(raw.data))
                elif raw.type is aiohttp.WSMsgType.BINARY:
                    tally.binary_received += 1
                else:
                    if raw.type is aiohttp.WSMsgType.CLOSE:
                        # The server's own code: aiohttp reports 1006 instead when the
                        # server drops the connection before this side's close reply.
                        self.close_code = int(raw.data)
                        self.close_reason = str(raw.extra or "")
                    break
        except Exception as e:  # a reader that dies would hide every later receipt
            tally.closes[f"reader failed: {type(e).__name__}"] += 1
        finally:
            if not self.closing:
                code = self.close_code or self.ws.close_code
                what = f"{code} {self.close_reason}".strip()
                if code not in (1000, 1001, 1007, 1008, 1009, 4001):
                    # No close frame read: the stories say what came before.
                    error = self.ws.exception()
                    what += f" ({type(error).__name__ if error else 'no exception'})"
                    if len(tally.abnormal) < MAX_ABNORMAL_STORIES:
                        tally.abnormal.append(self.story(what))
                tally.closes[what] += 1
            self.closed.set()
            self.arrived.set()

    def _handle(self, text: str) -> None:
        tally = self.registry.tally
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError):
            tally.unparsable += 1
            return
        if not isinstance(msg, dict):
            tally.unparsable += 1
            return
        kind = str(msg.get("type"))
        tally.received[kind] += 1
        self.trail.append(f"error {msg.get('code')}" if kind == "error" else kind)
        if kind == "error":
            code = str(msg.get("code"))
            tally.errors[code] += 1
            self.errors[code] += 1
            self.last_error = code
            if code == "internal_error":
                tally.culprits.update(self.recent)
            if code in NOTABLE_CODES and len(tally.stories) < MAX_STORIES:
                tally.stories.append(self.story(code))
            if MARKER in str(msg.get("message")):
                self.messages.append(msg)  # the answer to drain()'s marker
            return
        self.messages.append(msg)
        if kind == "joined":
            with contextlib.suppress(KeyError, TypeError):
                self.registry.add_participant(str(msg["participant"]["id"]), self.room)
            self.joined.set()
        if self.view is not None:
            try:
                self.view.learn(msg)
            except (KeyError, TypeError, AttributeError):
                tally.received["malformed:" + kind] += 1
        if kind == "ended" and self._on_ended is not None:
            self._on_ended(self.room)
        self.arrived.set()


# ---- the cross-room check ----


def _named(value: Json) -> Iterator[str]:
    """Every string and object key in `value`, outside free text and relayed data."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                if key in FREE_TEXT_KEYS:
                    continue
                yield key
                stack.append(inner)


def named_ids(msg: dict[str, Any]) -> Iterator[str]:
    relayed = msg.get("type") == "signal"
    for key, value in msg.items():
        if key in FREE_TEXT_KEYS or (relayed and key == "data"):
            continue
        yield from _named(value)


def find_cross_room(
    room_of: dict[str, str],
    rooms: set[str],
    receipts: Iterable[tuple[str, Sequence[dict[str, Any]]]],
) -> list[str]:
    """Each message that names a participant (`room_of`: id -> room) or a room other than
    the room of the socket that received it; `receipts` are (socket's room, messages)."""
    found: list[str] = []
    for own, messages in receipts:
        for msg in messages:
            for name in named_ids(msg):
                room = room_of.get(name) or (name if name in rooms else None)
                if room is not None and room != own:
                    found.append(
                        f"a socket of room {own or '-'} got {msg.get('type')!r} naming"
                        f" {name!r} of room {room}: {json.dumps(msg)[:300]}"
                    )
    return found


def cross_room_deliveries(registry: Registry) -> list[str]:
    receipts = ((conn.room, conn.messages) for conn in registry.conns)
    return find_cross_room(registry.room_of, registry.rooms, receipts)


# ---- the run ----


@dataclass(frozen=True)
class Target:
    """A running node: where it listens, its process and its log."""

    name: str
    url: str
    pid: int
    log_path: Path


@dataclass(frozen=True)
class FuzzConfig:
    messages: int = 100_000
    seed: int = 1
    rooms: int = 48
    # Frames per second per socket: under the default limit (50/s), so that rate_limited
    # comes from the deliberate bursts, not from the pace.
    socket_rate: float = 35.0
    prejoin_share: float = 0.04
    prejoin_workers: int = 4
    # Sockets that never send: each must get join_timeout within join_timeout seconds.
    silent_sockets: int = 0
    join_timeout: float = 10.0
    max_seconds: float = 300.0
    room_prefix: str = "fz"
    rate_note: str = ""


@dataclass
class Slot:
    """A room that the fuzz keeps populated; it moves to a new room id once ended."""

    index: int
    prefix: str
    rng: random.Random
    registry: Registry
    generation: int = 0
    room: str = ""
    settings: RoomSettings = field(default_factory=RoomSettings)
    admit_rate: float = 0.5

    def __post_init__(self) -> None:
        self._open()

    def _open(self) -> None:
        rng = self.rng
        self.room = f"{self.prefix}-{self.index}-{self.generation}"
        self.settings = RoomSettings(
            max_clients=rng.randint(1, 3),
            waiting_room=rng.random() < 0.8,
            recording=RecordingMode.CONSENT if rng.random() < 0.5 else RecordingMode.OFF,
        )
        # Some rooms keep their clients waiting; most admit them soon.
        self.admit_rate = rng.choice((0.0, 0.3, 1.0, 1.0))
        self.registry.rooms.add(self.room)

    def ended(self, room: str) -> None:
        if room == self.room:
            self.generation += 1
            self._open()


@dataclass
class Seat:
    """One participant's place in a slot: it joins, sends, and joins again when closed."""

    index: int
    slot: Slot
    role: Role
    rng: random.Random
    generator: MessageGenerator
    link: str = ""
    link_room: str = ""
    view: View | None = None
    conn: Conn | None = None
    refusals: int = 0


class Budget:
    """Frames left to send, and the time bound."""

    def __init__(self, frames: int, deadline: float) -> None:
        self.left = frames
        self.deadline = deadline

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() > self.deadline:
            return False
        self.left -= 1
        return True

    @property
    def done(self) -> bool:
        return self.left <= 0 or time.monotonic() > self.deadline


class Fuzzer:
    """One run against running nodes: seats that keep their rooms populated and send, and
    workers that open sockets, send garbage before any join and close them."""

    def __init__(self, targets: Sequence[Target], secret: bytes, config: FuzzConfig) -> None:
        self._sessions: dict[int, aiohttp.ClientSession] = {}
        self.targets = targets
        self.config = config
        self.registry = Registry()
        self.minter = Minter(secret, random.Random(f"{config.seed}/minter"))
        deadline = time.monotonic() + config.max_seconds
        prejoin = int(config.messages * config.prejoin_share)
        self.budget = Budget(config.messages - prejoin, deadline)
        self.prejoin_budget = Budget(prejoin, deadline)
        self.slots = [
            Slot(i, config.room_prefix, random.Random(f"{config.seed}/slot{i}"), self.registry)
            for i in range(config.rooms)
        ]
        self.seats: list[Seat] = []
        self.seconds = 0.0  # how long the fuzz took, until the last frame was sent
        for slot in self.slots:
            roles = [Role.THERAPIST] * (2 if slot.rng.random() < 0.25 else 1)
            roles += [Role.CLIENT] * (slot.settings.max_clients + slot.rng.randint(0, 1))
            for role in roles:
                rng = random.Random(f"{config.seed}/seat{len(self.seats)}")
                gen = MessageGenerator(rng, self._strangers(rng))
                self.seats.append(Seat(len(self.seats), slot, role, rng, gen))

    def _strangers(self, rng: random.Random) -> Callable[[str], str]:
        return lambda room: self.registry.stranger(rng, room)

    def session(self, group: int) -> aiohttp.ClientSession:
        """A client session per group of sockets, each from a loopback address of its own:
        the nodes cap the sockets open from one address."""
        if group not in self._sessions:
            self._sessions[group] = client_session(group)
        return self._sessions[group]

    async def close(self) -> None:
        for http in self._sessions.values():
            await http.close()

    async def open(
        self, rng: random.Random, group: int, room: str, view: View | None = None
    ) -> Conn | None:
        target = rng.choice(self.targets)
        slot = next((s for s in self.slots if s.room == room), None)
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                ws = await self.session(group).ws_connect(f"{target.url}/ws")
        except (aiohttp.ClientError, OSError, TimeoutError):
            self.registry.tally.connect_failures += 1
            return None
        return Conn(ws, room, self.registry, view, slot.ended if slot else None)

    # -- seats --

    async def seat_loop(self, seat: Seat) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        interval = 1.0 / self.config.socket_rate
        while not self.budget.done:
            if (seat.conn is None or seat.conn.closed.is_set()) and not await self.connect(seat):
                # Backing off a refused join (a full room without a waiting room).
                await asyncio.sleep(min(2.0, 0.1 * 2**seat.refusals))
                continue
            assert seat.conn is not None and seat.view is not None
            frames = seat.generator.frames(seat.view)
            for frame in frames:
                if not self.budget.take():
                    return
                await seat.conn.send(frame)
            # Paced under the per-socket limit; a run behind schedule does not catch up.
            next_at = max(next_at + interval * len(frames), loop.time())
            await asyncio.sleep(next_at - loop.time())

    async def connect(self, seat: Seat) -> bool:
        slot, rng = seat.slot, seat.rng
        room = slot.room
        view = seat.view
        resume = ""
        if view is not None and view.room == room and view.resume and rng.random() < 0.6:
            resume = view.resume
            if rng.random() < 0.1:
                # This participant's own id with a wrong secret: refused, place kept.
                wrong = rng.choice(("wrong", "\ud800", "x" * 150, view.resume))
                resume = f"{view.me}.{wrong}"
        elif not seat.link or seat.link_room != room or rng.random() < 0.3:
            seat.link = self.minter.link(room, seat.role, slot.settings)
            seat.link_room = room
        if not self.budget.take():
            return False
        new_view = View(room, seat.role, seat.link, admit_rate=slot.admit_rate)
        conn = await self.open(rng, seat.index // SOCKETS_PER_ADDRESS, room, new_view)
        if conn is None:
            seat.refusals += 1
            return False
        message: dict[str, Json] = {"type": "join", "token": seat.link}
        if resume:
            message["resume"] = resume
        label = "join:link"
        if resume:
            label = "join:resume" if view and resume == view.resume else "join:wrong_resume"
        await conn.send(Frame(label, json.dumps(message).encode(), kind="join"))
        outcome = await conn.wait_for(lambda m: m.get("type") == "joined")
        tally = self.registry.tally
        if outcome is not None:
            tally.joins["joined" + (" (resumed)" if outcome.get("resumed") else "")] += 1
            seat.conn, seat.view, seat.refusals = conn, new_view, 0
            return True
        code = conn.last_error or "no answer"
        tally.joins[code] += 1
        await conn.close()
        seat.refusals += 1
        if code == "room_ended":
            slot.ended(room)
        if code != "room_full":
            # A link in use, a turned-away client, a resume that no longer matches: start
            # afresh with a new link.
            seat.link, seat.view = "", None
        return False

    # -- sockets before any join --

    async def prejoin_loop(self, index: int) -> None:
        rng = random.Random(f"{self.config.seed}/prejoin{index}")
        gen = MessageGenerator(rng, self._strangers(rng))
        while not self.prejoin_budget.done:
            slot = rng.choice(self.slots)
            view = View(slot.room, Role.CLIENT, self.minter.link(slot.room, Role.CLIENT))
            frames = self.prejoin_frames(rng, gen, view)
            conn = await self.open(rng, PREJOIN_GROUP + index, view.room)
            if conn is None:
                continue
            sent = 0
            for frame in frames:
                if not self.prejoin_budget.take():
                    break
                await conn.send(frame)
                sent += 1
            if not sent:
                await conn.close()
                return
            await conn.wait_for(lambda m: m.get("type") == "joined")
            if conn.joined.is_set() and rng.random() < 0.5 and self.prejoin_budget.take():
                await conn.send(gen.mutated(view))
            if not conn.joined.is_set() and not conn.closed.is_set():
                self.registry.tally.closes["not closed after a refused first message"] += 1
            await conn.close()

    def prejoin_frames(self, rng: random.Random, gen: MessageGenerator, view: View) -> list[Frame]:
        what = rng.choices(
            ("garbage", "mutated", "binary", "bad_token", "bad_resume", "not_join", "second"),
            weights=(25, 20, 8, 25, 8, 10, 4),
        )[0]
        if what == "garbage":
            frames = [gen.garbage(view)]
        elif what == "mutated":
            frames = [gen.mutated(view, "join" if rng.random() < 0.5 else None)]
        elif what == "binary":
            frames = [gen.binary()]
        elif what == "bad_token":
            how, token = self.minter.bad(view.room)
            frames = [gen.frame(f"token:{how}", {"type": "join", "token": token}, "join")]
        elif what == "bad_resume":
            resume = rng.choice(
                (
                    f"{gen.stranger(view.room)}.{gen.word(32)}",
                    gen.word(30),
                    ".",
                    "x" * 201,
                    f"{gen.word(12)}.",
                    "\u0000.\u0000",
                )
            )
            msg = {"type": "join", "token": view.token, "resume": resume}
            frames = [gen.frame("prejoin:bad_resume", msg, "join")]
        elif what == "not_join":
            kind = rng.choice([k for k in INBOUND_TYPES if k != "join"])
            frames = [gen.frame(f"prejoin:{kind}_first", gen.template(kind, view), kind)]
        else:  # "second"
            # Another device with a live client's link: link_in_use (or its place, if its
            # socket just dropped).
            live = [
                s
                for s in self.seats
                if s.role is Role.CLIENT and s.link and s.link_room == s.slot.room
            ]
            seat = rng.choice(live) if live else None
            view.room = seat.slot.room if seat else view.room
            token = seat.link if seat else view.token
            frames = [gen.frame("prejoin:second_device", {"type": "join", "token": token}, "join")]
        if rng.random() < 0.3:  # more after the first: the socket should be closed by then
            frames.append(gen.garbage(view))
        return frames

    # -- the whole run --

    async def run(self) -> None:
        silent = [
            conn
            for conn in [
                await self.open(random.Random(f"{self.config.seed}/silent{i}"), SILENT_GROUP, "")
                for i in range(self.config.silent_sockets)
            ]
            if conn is not None
        ]
        started = time.monotonic()
        tasks = [asyncio.create_task(self.seat_loop(seat)) for seat in self.seats]
        tasks += [
            asyncio.create_task(self.prejoin_loop(i)) for i in range(self.config.prejoin_workers)
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.seconds = time.monotonic() - started
        conns = [s.conn for s in self.seats if s.conn is not None]
        # Before the sockets close, everything on its way to them arrives: each answers a
        # marker, twice over, so that what the first round made other nodes relay is in.
        for rounds in range(2):
            answered = await asyncio.gather(
                *(c.drain(f"{MARKER}-{rounds}-{i}") for i, c in enumerate(conns))
            )
            self.registry.tally.markers_unanswered += answered.count(False)
        await asyncio.gather(*(c.close() for c in conns))
        # The silent sockets' refusal comes when the server's join timeout runs out.
        left = self.config.join_timeout + 5 - (time.monotonic() - started)
        for conn in silent:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.1, left)):
                    await conn.closed.wait()
            if not conn.closed.is_set():
                self.registry.tally.closes["silent socket not closed"] += 1
            await conn.close()


def _relayed(
    kind: str, sender: str, key: str = "", value: Json = None
) -> Callable[[dict[str, Any]], bool]:
    def match(msg: dict[str, Any]) -> bool:
        return (
            msg.get("type") == kind
            and msg.get("from") == sender
            and (not key or msg.get(key) == value)
        )

    return match


async def fresh_room_works(
    http: aiohttp.ClientSession, targets: Sequence[Target], secret: bytes, registry: Registry
) -> list[str]:
    """A new room after the fuzz: join, admit, a signal each way, a chat each way."""
    minter = Minter(secret, random.Random(0))
    room = f"fresh-{secrets.token_hex(4)}"
    registry.rooms.add(room)
    problems: list[str] = []
    conns: list[Conn] = []

    async def join(target: Target, role: Role) -> tuple[Conn, str]:
        ws = await http.ws_connect(f"{target.url}/ws")
        conn = Conn(ws, room, registry)
        conns.append(conn)
        token = minter.link(room, role)
        await conn.send(Frame("fresh:join", json.dumps({"type": "join", "token": token}).encode()))
        joined = await conn.wait_for(lambda m: m.get("type") == "joined")
        if joined is None:
            raise BenchError(f"{role} did not join: {conn.last_error or 'no answer'}")
        return conn, str(joined["participant"]["id"])

    async def say(conn: Conn, msg: dict[str, Json]) -> None:
        await conn.send(Frame(f"fresh:{msg['type']}", json.dumps(msg).encode()))

    async def expect(conn: Conn, what: str, match: Callable[[dict[str, Any]], bool]) -> None:
        if await conn.wait_for(match) is None:
            raise BenchError(
                f"no {what} ({dict(conn.errors)} errors, closed {conn.closed.is_set()})"
            )

    try:
        therapist, tid = await join(targets[0], Role.THERAPIST)
        client, cid = await join(targets[-1], Role.CLIENT)
        await expect(
            therapist,
            "lobby with the client",
            lambda m: m.get("type") == "lobby" and cid in [w["id"] for w in m["waiting"]],
        )
        await say(therapist, {"type": "admit", "participant": cid})
        await expect(client, "admitted", lambda m: m.get("type") == "admitted")
        await expect(therapist, "peer_joined", lambda m: m.get("type") == "peer_joined")
        await say(therapist, {"type": "signal", "to": cid, "data": {"kind": "fresh", "n": 1}})
        await say(client, {"type": "signal", "to": tid, "data": {"kind": "fresh", "n": 2}})
        await say(client, {"type": "chat", "text": "hello after the fuzz"})
        await say(therapist, {"type": "chat", "text": "hello back"})
        for conn, sender, n in ((client, tid, 1), (therapist, cid, 2)):
            data = {"kind": "fresh", "n": n}
            await expect(conn, f"signal {n}", _relayed("signal", sender, "data", data))
            await expect(conn, "chat", _relayed("chat", sender))
        for conn in (therapist, client):
            if conn.errors:
                problems.append(f"errors in the fresh room: {dict(conn.errors)}")
    except (BenchError, aiohttp.ClientError, OSError) as e:
        problems.append(f"the fresh room failed: {e}")
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    return problems


# ---- what the servers show ----


def _rss(pid: int) -> int:
    """The process's RSS in KiB, or -1 once it is gone."""
    rss = rss_kib(pid)
    return -1 if rss is None else rss


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


_EXTRAS = re.compile(r" (room|participant|by|role|state|reason|code|node|recording)=\S*")


def tracebacks(log: str) -> tuple[int, Counter[str]]:
    """'Traceback' lines in a node's log, and each one's story: the log line before it, the
    innermost frame of the project's code, and the exception."""
    lines = log.splitlines()
    kinds: Counter[str] = Counter()
    count = 0
    for i, line in enumerate(lines):
        if "Traceback" not in line:
            continue
        count += 1
        before = _EXTRAS.sub("", lines[i - 1]).split(": ", 1)[-1] if i else ""
        where, exception = "", ""
        for later in lines[i + 1 :]:
            if later.startswith("  File ") and str(PROJECT) in later and ".venv" not in later:
                where = later.strip()
            elif later and not later[0].isspace():
                exception = later[:160]
                break
        kinds[f"{before} | {where} | {exception}"] += 1
    return count, kinds


@dataclass
class NodeFigures:
    name: str
    rss_before_kib: int
    rss_after_kib: int = -1
    log_before: int = 0
    log_after: int = 0
    tracebacks: int = 0
    alive: bool = True


@dataclass
class FuzzReport:
    mode: str
    config: FuzzConfig
    tally: Tally
    nodes: list[NodeFigures]
    traceback_kinds: Counter[str]
    server_errors: Counter[str]
    cross_room: list[str]
    fresh_room_problems: list[str]
    elapsed: float
    rooms_used: int
    seats: int

    @property
    def messages_sent(self) -> int:
        """Fuzz frames: not the markers and the fresh room's messages that follow."""
        return sum(
            n for label, n in self.tally.sent.items() if not label.startswith(NOT_FUZZ_LABELS)
        )

    @property
    def internal_errors(self) -> int:
        return self.tally.errors["internal_error"]

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.internal_errors:
            found.append(f"{self.internal_errors} internal_error replies")
        for node in self.nodes:
            if node.tracebacks:
                found.append(f"{node.tracebacks} tracebacks in node {node.name}'s log")
            if not node.alive:
                found.append(f"node {node.name} exited")
        if self.cross_room:
            found.append(f"{len(self.cross_room)} cross-room deliveries")
        found += self.fresh_room_problems
        fuzz_sent = self.messages_sent
        if self.tally.markers_unanswered:
            found.append(
                f"{self.tally.markers_unanswered} sockets did not answer their marker:"
                " what they received may be incomplete"
            )
        if fuzz_sent < self.config.messages:
            found.append(f"only {fuzz_sent} of {self.config.messages} messages sent in time")
        return found


async def read_server_errors(http: aiohttp.ClientSession, target: Target) -> Counter[str]:
    counts: Counter[str] = Counter()
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
        async with asyncio.timeout(10), http.get(f"{target.url}/metrics") as resp:
            text = await resp.text()
        for m in re.finditer(r'^sessionroom_errors_total\{code="([^"]*)"\} (\d+)', text, re.M):
            counts[m.group(1)] += int(m.group(2))
    return counts


async def run_fuzz(
    targets: Sequence[Target], secret: bytes, config: FuzzConfig, mode: str = ""
) -> FuzzReport:
    """Fuzz the running `targets`, check a fresh room, and report what the servers did."""
    for target in targets:
        if urlsplit(target.url).hostname != "127.0.0.1":
            raise BenchError(f"the fuzz only talks to 127.0.0.1, not {target.url}")
    nodes = [NodeFigures(t.name, _rss(t.pid), log_before=log_size(t.log_path)) for t in targets]
    fuzzer = Fuzzer(targets, secret, config)
    try:
        await fuzzer.run()
        http = fuzzer.session(FRESH_GROUP)
        problems = await fresh_room_works(http, targets, secret, fuzzer.registry)
        server_errors: Counter[str] = Counter()
        for target in targets:
            server_errors += await read_server_errors(http, target)
    finally:
        await fuzzer.close()
    kinds: Counter[str] = Counter()
    for node, target in zip(nodes, targets, strict=True):
        node.rss_after_kib = _rss(target.pid)
        node.alive = node.rss_after_kib >= 0
        node.log_after = log_size(target.log_path)
        text = target.log_path.read_text(errors="replace") if target.log_path.exists() else ""
        node.tracebacks, found = tracebacks(text)
        kinds += found
    registry = fuzzer.registry
    return FuzzReport(
        mode=mode or f"{len(targets)} node{'s' if len(targets) > 1 else ''}",
        config=config,
        tally=registry.tally,
        nodes=nodes,
        traceback_kinds=kinds,
        server_errors=server_errors,
        cross_room=cross_room_deliveries(registry),
        fresh_room_problems=problems,
        elapsed=fuzzer.seconds,
        rooms_used=len(registry.rooms),
        seats=len(fuzzer.seats),
    )


def _by_category(sent: Counter[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for label, n in sent.items():
        out[label.split(":", 1)[0]] += n
    return out


def _counts(counter: Counter[str], limit: int = 40) -> str:
    return ", ".join(f"{k} {n}" for k, n in counter.most_common(limit)) or "none"


def format_report(r: FuzzReport) -> str:
    t, c = r.tally, r.config
    sent = r.messages_sent
    refusals = sum(t.errors.values())
    limited = t.errors["rate_limited"]
    out = [
        f"== fuzz, {r.mode}: seed {c.seed} ==",
        f"rate limits: {c.rate_note or 'the nodes own settings'}; each socket paced at"
        f" {c.socket_rate:g} frames/s, bursts of 55-90 on purpose",
        f"rooms: {c.rooms} kept populated, {r.rooms_used} room ids used in all;"
        f" {r.seats} seats, {t.sockets} sockets opened ({t.connect_failures} failed to connect)",
        f"messages sent: {sent} in {r.elapsed:.1f} s = {sent / max(r.elapsed, 1e-9):.0f}/s"
        f" (then {sum(t.sent.values()) - sent} markers and fresh-room messages)",
        f"  by category: {_counts(_by_category(t.sent))}",
        f"  by label: {_counts(t.sent, 80)}",
        f"  inbound types covered: {_counts(t.kinds_sent)}",
        f"  missing types: {[k for k in INBOUND_TYPES if not t.kinds_sent[k]] or 'none'}",
        f"joins: {_counts(t.joins)}",
        f"refusals received: {refusals} ({limited} rate_limited ="
        f" {100 * limited / max(refusals, 1):.1f}%)",
        f"  by code: {_counts(t.errors)}",
        f"  counted by the nodes (/metrics): {_counts(r.server_errors)}",
        f"internal_error: {r.internal_errors} received (target 0);"
        f" {r.server_errors['internal_error']} counted by the nodes",
    ]
    if t.culprits:
        out.append(f"  frames sent just before them: {_counts(t.culprits, 12)}")
    out += [f"  story: {story}" for story in t.stories]
    out += [
        f"other messages received: {_counts(t.received - Counter(error=t.received['error']))}",
        f"unparsable from the server: {t.unparsable}; binary from the server: {t.binary_received}",
        f"closes by the server: {_counts(t.closes)}",
        # 1006 is seen when the server closes (1009, 1007, ended, denied...) while this
        # side is still sending: it drops the connection with unread input, the kernel
        # answers with a reset, and the last messages and the close frame are lost.
        *(f"  no close frame: {story}" for story in t.abnormal),
        f"cross-room deliveries: {len(r.cross_room)} (target 0); sockets that did not answer"
        f" the markers before closing: {t.markers_unanswered}",
        *(f"  {line}" for line in r.cross_room[:5]),
    ]
    for n in r.nodes:
        out.append(
            f"node {n.name}: tracebacks {n.tracebacks} (target 0);"
            f" RSS {n.rss_before_kib / 1024:.1f} -> {n.rss_after_kib / 1024:.1f} MiB;"
            f" log {n.log_before} -> {n.log_after} bytes (+{n.log_after - n.log_before})"
            + ("" if n.alive else "; EXITED")
        )
    for story, count in r.traceback_kinds.most_common(10):
        out.append(f"  {count} x {story}")
    out.append(
        "fresh room after the fuzz: "
        + ("joined, admitted, signal and chat both ways: ok" if not r.fresh_room_problems else "")
        + "; ".join(r.fresh_room_problems)
    )
    problems = r.problems()
    out.append("targets met" if not problems else "targets NOT met: " + "; ".join(problems))
    return "\n".join(out)


# ---- the command ----


def _target(name: str, server: Server) -> Target:
    assert server.proc is not None
    return Target(name, server.url, server.proc.pid, server.log_path)


async def run_mode(args: argparse.Namespace, nodes: int, tmp: Path) -> FuzzReport:
    secret = secrets.token_urlsafe(48)
    overrides = {
        "SESSIONROOM_RATE_BURST": str(args.rate_burst),
        "SESSIONROOM_RATE_PER_SECOND": str(args.rate_per_second),
        "SESSIONROOM_JOIN_TIMEOUT_SECONDS": str(args.join_timeout),
        # The service's own default is info: the log growth is then what a fuzz makes a
        # node write in a real deployment.
        "SESSIONROOM_LOG_LEVEL": args.log_level,
    }
    defaults = (DEFAULTS.rate_burst, DEFAULTS.rate_per_second)
    how = "the defaults" if (args.rate_burst, args.rate_per_second) == defaults else "set by flags"
    redis = RedisServer(tmp / "redis") if nodes == 2 else None
    if redis is None:
        started = {"M": bench_node(tmp / "node-M", "M", secret, **overrides)}
    else:
        shared = {"SESSIONROOM_REDIS_URL": redis.url, "SESSIONROOM_REDIS_PREFIX": "fuzz"}
        started = {n: bench_node(tmp / f"node-{n}", n, secret, **shared, **overrides) for n in "AB"}
    try:
        if redis is not None:
            redis.start()
        await asyncio.gather(*(server.start() for server in started.values()))
        config = FuzzConfig(
            messages=args.messages,
            seed=args.seed,
            rooms=args.rooms,
            socket_rate=args.socket_rate,
            silent_sockets=4,
            join_timeout=args.join_timeout,
            max_seconds=args.max_seconds,
            room_prefix=f"fz{nodes}",
            rate_note=f"burst {args.rate_burst}, {args.rate_per_second:g}/s per socket ({how})",
        )
        mode = "1 node (in-memory)" if nodes == 1 else "2 nodes on one redis-server"
        targets = [_target(name, server) for name, server in started.items()]
        return await run_fuzz(targets, secret.encode(), config, mode)
    finally:
        for server in started.values():
            await stop_node(server)
        if redis is not None:
            stop_redis(redis)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argument_parser("bench.fuzz", __doc__)
    parser.add_argument("--messages", type=int, default=100_000, help="frames per mode")
    parser.add_argument("--nodes", type=int, choices=(1, 2), help="one mode only (default both)")
    parser.add_argument("--seed", type=int, help="random seed (default: a new one, printed)")
    parser.add_argument("--rooms", type=int, default=48, help="rooms kept populated")
    parser.add_argument("--socket-rate", type=float, default=35.0, help="frames/s per socket")
    parser.add_argument("--rate-burst", type=int, default=DEFAULTS.rate_burst)
    parser.add_argument("--rate-per-second", type=float, default=DEFAULTS.rate_per_second)
    parser.add_argument("--join-timeout", type=float, default=DEFAULTS.join_timeout_seconds)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="time bound per mode")
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = secrets.randbelow(10**9)
    if args.messages < 1 or args.rooms < 1 or args.socket_rate <= 0 or args.max_seconds <= 0:
        parser.error("--messages, --rooms, --socket-rate and --max-seconds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile_limit()
    # A plain `kill` unwinds like Ctrl-C, so that the nodes and redis-server are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"seed {args.seed} (repeat with --seed {args.seed})", flush=True)
    met = True
    for nodes in (1, 2) if args.nodes is None else (args.nodes,):
        with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp:
            report = asyncio.run(run_mode(args, nodes, Path(tmp)))
        print(format_report(report), flush=True)
        met = met and not report.problems()
    print("All targets met" if met else "Some targets NOT met", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
