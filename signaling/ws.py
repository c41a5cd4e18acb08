"""The /ws endpoint: one Connection per socket, from `join` to close.

The handler authenticates the first message, then reads messages one at a time and hands
them to RoomService; everything outbound goes through the bus into this connection's queue,
written by one writer task so that a slow socket never blocks a sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from signaling import messages, protocol
from signaling.appkeys import CLIENT_LIMITS, CONNECTIONS, METRICS, SERVICE, SETTINGS
from signaling.bus import Envelope
from signaling.core.errors import (
    BadMessage,
    JoinTimeout,
    MessageTooLarge,
    NotAllowed,
    RateLimited,
    SessionroomError,
    TooManyConnections,
)
from signaling.ratelimit import TokenBucket
from signaling.rooms import Session

log = logging.getLogger("sessionroom.ws")

# Messages over MAX_MESSAGE_BYTES get `message_too_large` and the socket lives on; past this
# hard limit aiohttp closes the socket with 1009 (message too big) before we can answer.
HARD_MESSAGE_LIMIT = 4 * protocol.MAX_MESSAGE_BYTES
# Outbound messages queued for a socket that does not read them; past this, it is closed.
SEND_QUEUE_LIMIT = 1024
CLOSE_REFUSED = WSCloseCode.POLICY_VIOLATION  # 1008
CLOSE_SHUTDOWN = WSCloseCode.GOING_AWAY  # 1001


class Connection:
    def __init__(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        app = request.app
        self.ws = ws
        self.settings = app[SETTINGS]
        self.service = app[SERVICE]
        self.metrics = app[METRICS]
        self.session: Session | None = None
        self._outbox: asyncio.Queue[Envelope] = asyncio.Queue(SEND_QUEUE_LIMIT)
        self._writer: asyncio.Task[None] | None = None
        self._bucket = TokenBucket(self.settings.rate_burst, self.settings.rate_per_second)
        self._left = False
        self._closing = False  # a refusal that ends the socket is on its way out
        self._logged_codes: set[str] = set()

    # ---- lifecycle ----

    async def run(self) -> None:
        try:
            self.session = await self._authenticate()
        except SessionroomError as e:
            await self._refuse(e)
            return
        except Exception:
            log.exception("join failed")
            await self._refuse(SessionroomError())
            return
        if self.session is None:
            return
        try:
            await self._read_loop(self.session)
        finally:
            await self._finish(self.session)

    async def _authenticate(self) -> Session | None:
        try:
            msg = await self.ws.receive(timeout=self.settings.join_timeout_seconds)
        except TimeoutError:
            raise JoinTimeout() from None
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return None
        if msg.type is not WSMsgType.TEXT:
            raise BadMessage("Messages are JSON text.")
        self._check_size(msg.data)
        inbound = protocol.parse(msg.data)
        if not isinstance(inbound, protocol.Join):
            raise NotAllowed("The first message must be 'join'.")
        self.metrics.messages["join"] += 1
        claims = self.service.keys.verify(inbound.token)
        joined = await self.service.join(claims, inbound.resume, new_device=inbound.new_device)
        self.metrics.joins[str(claims.role)] += 1
        # `joined` goes first; then whatever the bus kept for this participant.
        self._outbox.put_nowait(Envelope(to="", origin="", payload=joined.message))
        self._writer = asyncio.create_task(self._write_loop())
        # Known before the mailbox is emptied into this socket: an envelope kept there for an
        # earlier connection (the `replaced` sent to the socket this one resumes) is not ours.
        self.session = joined.session
        await self.service.bus.subscribe(joined.session.participant_id, self._deliver)
        return joined.session

    async def _refuse(self, error: SessionroomError) -> None:
        self.metrics.errors[error.code] += 1
        # Refused before `join`: counted in /metrics; a log line per socket would let anyone
        # who can open sockets write to the disk.
        log.debug("socket refused", extra={"code": error.code})
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(json.dumps(messages.error(error)))
            await self.ws.close(code=CLOSE_REFUSED, message=error.code.encode())

    async def _finish(self, session: Session) -> None:
        await self.service.bus.unsubscribe(session.participant_id, self._deliver)
        if not self._left:
            try:
                await self.service.disconnected(session)
            except SessionroomError:
                pass
            except Exception:
                log.exception(
                    "disconnect handling failed",
                    extra={"room": session.room_id, "participant": session.participant_id},
                )
        if self._writer is not None:
            if self._left or self._closing:
                # Let the writer send `left` (or the error) and close the socket itself.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._writer), timeout=2)
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if not self.ws.closed:
            await self.ws.close()

    async def shutdown(self) -> None:
        """The node is stopping: say so, then close (the page resumes elsewhere)."""
        if self.ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(json.dumps(messages.server_shutdown()))
        await self.ws.close(code=CLOSE_SHUTDOWN, message=b"server_shutdown")

    # ---- inbound ----

    async def _read_loop(self, session: Session) -> None:
        async for msg in self.ws:
            if msg.type is WSMsgType.TEXT:
                try:
                    await self._handle(session, msg.data)
                except SessionroomError as e:
                    if e.closes:
                        # The writer sends the error, then closes: the reason arrives first.
                        self.metrics.errors[e.code] += 1
                        self._closing = True
                        try:
                            self._outbox.put_nowait(
                                Envelope(
                                    "",
                                    "",
                                    messages.error(e),
                                    close_code=CLOSE_REFUSED,
                                    close_reason=e.code,
                                )
                            )
                        except asyncio.QueueFull:
                            await self.ws.close(code=CLOSE_REFUSED, message=e.code.encode())
                        break
                    self._send_error(e)
                except Exception:
                    log.exception(
                        "message handling failed",
                        extra={"room": session.room_id, "participant": session.participant_id},
                    )
                    self._send_error(SessionroomError())
            elif msg.type is WSMsgType.BINARY:
                # Every frame counts against the socket's budget, whatever it holds.
                taken = self._bucket.take()
                self._send_error(BadMessage("Messages are JSON text.") if taken else RateLimited())
            if self._left:
                break

    async def _handle(self, session: Session, data: str) -> None:
        if not self._bucket.take():
            raise RateLimited()
        self._check_size(data)
        inbound = protocol.parse(data)
        self.metrics.messages[protocol.message_type(inbound)] += 1
        service = self.service
        match inbound:
            case protocol.Signal(to=to, data=payload):
                await service.signal(session, to, payload)
            case protocol.Chat(text=text, id=chat_id):
                await service.chat(session, text, chat_id)
            case protocol.Admit(participant=target):
                await service.admit(session, target)
            case protocol.Deny(participant=target, message=message):
                await service.deny(session, target, message)
            case protocol.Allow(participant=target):
                await service.allow(session, target)
            case protocol.LobbyNotice(text=text):
                await service.lobby_notice(session, text)
            case protocol.Leave():
                self._left = True
                await service.leave(session)
                self._outbox.put_nowait(
                    Envelope("", "", messages.left(), close_code=1000, close_reason="left")
                )
            case protocol.End():
                await service.end(session)
            case protocol.RecordingRequest():
                await service.request_recording(session)
            case protocol.RecordingStop():
                await service.stop_recording(session)
            case protocol.Consent(request=request_id, granted=granted):
                await service.consent(session, request_id, granted)
            case protocol.RecOffer(recording=recording_id, sdp=sdp):
                await service.recording_offer(session, recording_id, sdp)
            case protocol.Join():
                raise NotAllowed("This socket has already joined.")

    @staticmethod
    def _check_size(data: str) -> None:
        # Cheap bounds first: a character is 1 to 4 bytes of UTF-8.
        limit = protocol.MAX_MESSAGE_BYTES
        if len(data) > limit or (len(data) * 4 > limit and len(data.encode()) > limit):
            raise MessageTooLarge(f"A message may be at most {limit // 1024} KiB.")

    # ---- outbound ----

    def _deliver(self, envelope: Envelope) -> None:
        if (
            envelope.connection is not None
            and self.session is not None
            and envelope.connection != self.session.connection
        ):
            return
        try:
            self._outbox.put_nowait(envelope)
        except asyncio.QueueFull:
            log.warning("socket too slow, closing", extra=self._ids())
            asyncio.get_running_loop().create_task(
                self.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too_slow")
            )

    def _send_error(self, error: SessionroomError) -> None:
        self.metrics.errors[error.code] += 1
        self._log_refusal(error)
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(Envelope("", "", messages.error(error)))

    async def _write_loop(self) -> None:
        ws = self.ws
        while True:
            envelope = await self._outbox.get()
            try:
                if envelope.payload is not None:
                    await ws.send_str(json.dumps(envelope.payload))
                if envelope.close_code is not None:
                    await ws.close(code=envelope.close_code, message=envelope.close_reason.encode())
                    return
            except (ConnectionError, RuntimeError):
                return  # the socket is gone; the reader sees the close

    def _log_refusal(self, error: SessionroomError) -> None:
        # Once per code per socket: a client sending garbage cannot grow the log with it.
        if error.code in self._logged_codes:
            return
        self._logged_codes.add(error.code)
        log.info("message refused", extra={**self._ids(), "code": error.code})

    def _ids(self) -> dict[str, Any]:
        if self.session is None:
            return {}
        return {"room": self.session.room_id, "participant": self.session.participant_id}


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(
        heartbeat=settings.heartbeat_seconds, max_msg_size=HARD_MESSAGE_LIMIT
    )
    try:
        place = request.app[CLIENT_LIMITS].open_socket(request)
    except TooManyConnections as e:
        # Refused after the upgrade, so that the page reads the code, not a bare failure.
        await ws.prepare(request)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(messages.error(e)))
        await ws.close(code=CLOSE_REFUSED, message=e.code.encode())
        return ws
    with place:
        await ws.prepare(request)
        conn = Connection(request, ws)
        connections = request.app[CONNECTIONS]
        metrics = request.app[METRICS]
        connections.add(conn)
        metrics.sockets += 1
        try:
            await conn.run()
        finally:
            connections.discard(conn)
            metrics.sockets -= 1
    return ws
