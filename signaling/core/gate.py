"""The recording gate: a pure state machine from (gate, event) to the next gate.

The gate is part of the room's state, so it moves atomically with the room (an admission
and the stop it causes are one store transition). Each function returns a `GateChange`:
the new gate and what the service must do about it (who to ask, which recording started or
stopped). Nothing here does I/O, reads a clock or makes an id: callers pass them in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from signaling.core.errors import Conflict, NotAllowed


class Status(StrEnum):
    IDLE = "idle"
    PENDING = "pending"
    RECORDING = "recording"
    STOPPED = "stopped"


class Reason(StrEnum):
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    PARTICIPANT_LEFT = "participant_left"
    PARTICIPANT_JOINED = "participant_joined"
    STOPPED_BY_THERAPIST = "stopped_by_therapist"
    SESSION_ENDED = "session_ended"
    SERVER_STOPPED = "server_stopped"
    # Closed by recovery: the node writing it died (never a gate's own reason).
    INTERRUPTED = "interrupted"


Answers = tuple[tuple[str, bool | None], ...]


@dataclass(frozen=True)
class Gate:
    status: Status = Status.IDLE
    request: str | None = None
    requested_by: str | None = None
    answers: Answers = ()
    recording: str | None = None  # the id of the recording being written
    started_at: float | None = None
    reason: Reason | None = None
    by: str | None = None
    at: float | None = None

    @property
    def open(self) -> bool:
        """A request is live: pending or recording."""
        return self.status in (Status.PENDING, Status.RECORDING)

    def answer_of(self, participant_id: str) -> bool | None:
        return dict(self.answers).get(participant_id)

    def asked(self, participant_id: str) -> bool:
        return any(pid == participant_id for pid, _ in self.answers)

    def awaits(self, participant_id: str) -> bool:
        """An open request still waits for this participant's answer."""
        return self.open and self.asked(participant_id) and self.answer_of(participant_id) is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "request": self.request,
            "requested_by": self.requested_by,
            "answers": [[pid, a] for pid, a in self.answers],
            "recording": self.recording,
            "started_at": self.started_at,
            "reason": str(self.reason) if self.reason else None,
            "by": self.by,
            "at": self.at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Gate:
        if not data:
            return cls()
        return cls(
            status=Status(data["status"]),
            request=data["request"],
            requested_by=data["requested_by"],
            answers=tuple((pid, a) for pid, a in data["answers"]),
            recording=data["recording"],
            started_at=data["started_at"],
            reason=Reason(data["reason"]) if data["reason"] else None,
            by=data["by"],
            at=data["at"],
        )


@dataclass(frozen=True)
class GateChange:
    gate: Gate
    # Participants to send `consent_request` to.
    ask: tuple[str, ...] = ()
    # A recording that began with this change (its id is gate.recording).
    started: str | None = None
    # A recording that ended with this change, and why.
    stopped: str | None = None
    stop_reason: Reason | None = None


def new_recording_id(now: float) -> str:
    """`rec-YYYYMMDD-HHMMSS-xxxxxx`: the UTC time and six random letters or digits (the id
    a recording's folder is named by: recordings.storage checks it against its pattern)."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d-%H%M%S")
    return f"rec-{stamp}-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))


_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def _all_yes(answers: Answers) -> bool:
    return bool(answers) and all(a is True for _, a in answers)


def _start_if_ready(gate: Gate, now: float, new_recording: str) -> GateChange:
    if _all_yes(gate.answers):
        started = replace(gate, status=Status.RECORDING, recording=new_recording, started_at=now)
        return GateChange(started, started=new_recording)
    return GateChange(gate)


def _stop(gate: Gate, reason: Reason, by: str | None, now: float) -> GateChange:
    stopped = replace(
        gate, status=Status.STOPPED, recording=None, started_at=None, reason=reason, by=by, at=now
    )
    return GateChange(
        stopped,
        stopped=gate.recording,
        stop_reason=reason if gate.recording else None,
    )


def request(
    gate: Gate,
    *,
    by: str,
    present: tuple[str, ...],
    request_id: str,
    now: float,
    new_recording: str,
) -> GateChange:
    """A therapist asks to record; everyone present is asked, the therapist included."""
    if gate.open:
        raise Conflict("A recording request is already open.")
    pending = Gate(
        status=Status.PENDING,
        request=request_id,
        requested_by=by,
        answers=tuple((pid, None) for pid in present),
        by=by,
        at=now,
    )
    change = _start_if_ready(pending, now, new_recording)
    return replace(change, ask=present)


def answer(
    gate: Gate,
    *,
    participant: str,
    request_id: str,
    granted: bool,
    now: float,
    new_recording: str,
) -> GateChange:
    """A yes or no to the open request; a no while recording is a withdrawal."""
    if not gate.open:
        raise NotAllowed("No recording request is open.")
    if request_id != gate.request:
        raise Conflict("That recording request is no longer open.")
    if not gate.asked(participant):
        raise NotAllowed("You were not asked about this recording.")
    if not granted:
        reason = Reason.WITHDRAWN if gate.status is Status.RECORDING else Reason.DECLINED
        declined = replace(
            gate, answers=tuple((p, False if p == participant else a) for p, a in gate.answers)
        )
        return _stop(declined, reason, participant, now)
    if gate.answer_of(participant) is True:
        return GateChange(gate)
    answered = replace(
        gate,
        answers=tuple((p, True if p == participant else a) for p, a in gate.answers),
        by=participant,
        at=now,
    )
    return _start_if_ready(answered, now, new_recording)


def stop(gate: Gate, *, by: str, now: float) -> GateChange:
    if not gate.open:
        raise NotAllowed("There is no recording or request to stop.")
    return _stop(gate, Reason.STOPPED_BY_THERAPIST, by, now)


def participant_left(gate: Gate, *, participant: str, now: float) -> GateChange | None:
    """Someone who was asked left the room: the request ends. None if nothing changes."""
    if not gate.open or not gate.asked(participant):
        return None
    return _stop(gate, Reason.PARTICIPANT_LEFT, participant, now)


def participant_entered(gate: Gate, *, participant: str, now: float) -> GateChange | None:
    """A newcomer must say yes too: any recording stops until they do. The others' answers
    to this request stand."""
    if not gate.open or gate.asked(participant):
        return None
    asked = replace(gate, answers=(*gate.answers, (participant, None)))
    if gate.status is Status.RECORDING:
        paused = replace(
            asked,
            status=Status.PENDING,
            recording=None,
            started_at=None,
            reason=Reason.PARTICIPANT_JOINED,
            by=participant,
            at=now,
        )
        return GateChange(
            paused,
            ask=(participant,),
            stopped=gate.recording,
            stop_reason=Reason.PARTICIPANT_JOINED,
        )
    return GateChange(replace(asked, by=participant, at=now), ask=(participant,))


def shut(gate: Gate, *, reason: Reason, now: float) -> GateChange | None:
    """The session ended or the node is stopping."""
    if not gate.open:
        return None
    return _stop(gate, reason, None, now)
