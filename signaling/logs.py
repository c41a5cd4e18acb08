"""Logging setup: plain text or one JSON object a line.

Only these `extra` fields are written, so a display name, token or chat text cannot slip
into a log line through a careless `extra`.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

FIELDS = (
    "room",
    "participant",
    "by",
    "role",
    "state",
    "reason",
    "resumed",
    "code",
    "node",
    "recording",
    "request",
    "granted",
    "file",
    # A client address (or IPv6 /64), only on the rare line about a refused flood.
    "address",
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: getattr(record, k) for k in FIELDS if getattr(record, k, None) is not None}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # The ids go on the first line, before any traceback, so that a failure's line says
        # whose it was.
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {record.getMessage()}"
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        if extras:
            line = f"{line} {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


def configure(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would print request paths; ours carry no tokens, but keep it terse.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
