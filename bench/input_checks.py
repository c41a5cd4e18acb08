"""What checking untrusted input costs: the WebSocket parser and the REST schemas.

Each check is timed against a baseline measured in the same run on the same input:

  ws        signaling.protocol.parse (strict JSON, the nesting bound, the message's own
            checks) against a bare json.loads, for the messages a call sends most: an SDP
            offer, an ICE candidate, a chat line.
  rest      the pydantic schema of POST /api/v1/rooms (model_validate_json) against a bare
            json.loads of the same body, for an empty body and a full one.
  sealed    sealing and opening a bus envelope for Redis (signaling/sealed_text.py)
            against the json.dumps / json.loads of the same envelope.

Run from the project root: `.venv/bin/python -m bench.input_checks` (see --help).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

from signaling import protocol
from signaling.api_schemas import CreateRoom
from signaling.sealed_text import derive_keys, seal, unseal

OFFER_SDP = "v=0\r\n" + "".join(
    f"a=candidate:{i} 1 udp 2122260223 192.0.2.{i} 5{i:04d} typ host generation 0\r\n"
    f"a=rtpmap:{96 + i} VP8/90000\r\na=rtcp-fb:{96 + i} nack pli\r\n"
    for i in range(40)
)
WS_MESSAGES = {
    "offer": json.dumps(
        {
            "type": "signal",
            "to": "p" * 12,
            "data": {"description": {"type": "offer", "sdp": OFFER_SDP}},
        }
    ),
    "candidate": json.dumps(
        {
            "type": "signal",
            "to": "p" * 12,
            "data": {
                "candidate": {
                    "candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host",
                    "sdpMid": "0",
                    "sdpMLineIndex": 0,
                }
            },
        }
    ),
    "chat": json.dumps({"type": "chat", "text": "I'm here, the sound is a little quiet."}),
}
REST_BODIES = {
    "empty": b"{}",
    "full": json.dumps(
        {
            "settings": {"max_clients": 2, "waiting_room": True, "recording": "consent"},
            "therapist_name": "Dr Lee",
            "client_name": "Kim",
            "therapist_sub": "clinician-7",
            "client_sub": "patient-1234",
            "client_permissions": ["signal", "chat", "consent"],
            "not_before": 1795677200,
            "valid_for": 3600,
        }
    ).encode(),
}


def per_call_us(fn: Callable[[], object], repeat: int, rounds: int) -> float:
    """Median over `rounds` of the mean time of `repeat` calls, in microseconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        times.append((time.perf_counter() - start) / repeat * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=15, help="rounds (the median is kept)")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {args.rounds} rounds of {args.repeat} calls")
    print(f"{'check':<22}{'bytes':>7}{'baseline us':>13}{'checked us':>12}{'ratio':>8}")
    for name, text in WS_MESSAGES.items():
        base = per_call_us(lambda t=text: json.loads(t), args.repeat, args.rounds)  # type: ignore[misc]
        checked = per_call_us(lambda t=text: protocol.parse(t), args.repeat, args.rounds)  # type: ignore[misc]
        print(
            f"{'ws ' + name:<22}{len(text):>7}{base:>13.2f}{checked:>12.2f}{checked / base:>8.2f}"
        )
    for name, body in REST_BODIES.items():
        base = per_call_us(lambda b=body: json.loads(b), args.repeat, args.rounds)  # type: ignore[misc]
        checked = per_call_us(
            lambda b=body: CreateRoom.model_validate_json(b),  # type: ignore[misc]
            args.repeat,
            args.rounds,
        )
        print(
            f"{'rest ' + name:<22}{len(body):>7}{base:>13.2f}{checked:>12.2f}{checked / base:>8.2f}"
        )
    keys = derive_keys(b"bench-secret-that-is-long-enough-0123456789")
    for name, text in WS_MESSAGES.items():
        envelope = {"to": "p" * 12, "origin": "node-a", "payload": json.loads(text)}
        sealed = seal(keys, json.dumps(envelope), "p" * 12)
        base = per_call_us(lambda e=envelope: json.dumps(e), args.repeat, args.rounds)  # type: ignore[misc]
        checked = per_call_us(
            lambda e=envelope: seal(keys, json.dumps(e), "p" * 12),  # type: ignore[misc]
            args.repeat,
            args.rounds,
        )
        print(
            f"{'seal ' + name:<22}{len(text):>7}{base:>13.2f}{checked:>12.2f}{checked / base:>8.2f}"
        )
        plain = json.dumps(envelope)
        base = per_call_us(lambda t=plain: json.loads(t), args.repeat, args.rounds)  # type: ignore[misc]
        checked = per_call_us(
            lambda v=sealed: json.loads(unseal(keys, v, "p" * 12)),  # type: ignore[misc]
            args.repeat,
            args.rounds,
        )
        print(
            f"{'open ' + name:<22}{len(text):>7}{base:>13.2f}{checked:>12.2f}{checked / base:>8.2f}"
        )


if __name__ == "__main__":
    main()
