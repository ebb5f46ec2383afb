"""Every frame from the server after the welcome, routed to the part that waits for it.

In order: raw listeners see the frame first (the decoded object, or the text when it
is not JSON); then the incoming hooks may replace or refuse it; a SYNC frame's data
becomes the event's whole current object; then the frame goes to its place: a server
call to its performer, an answer to the request with its id (a late answer, to a call
that timed out or a stream left early, is dropped), a publication to its
subscription, a peer-queue message to the inbox, the ``ws:`` pushes to the client's
own handling (``ws:member``, ``ws:join`` and ``ws:leave`` to their subscription's
listeners, then on like any push), and any other push to the listeners of its event.

Frames are handled one at a time, in the order they arrive: listeners of one frame
finish before the next frame is read.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import orjson

from .. import protocol
from ..protocol.errors import InternalError, MonumentWSError
from ..protocol.frames import Kind, ServerFrame
from ..protocol.patches import SyncError
from .calls import Calls
from .channels import Channels
from .inbox import Inbox
from .listeners import Listeners, hooked
from .outbox import Outbox
from .performers import Performers
from .sync import Synced
from .tasks import Tasks

# __package__, not __name__: the whole client logs as monument_ws.client.
log = logging.getLogger(__package__)

#: Server frames that answer a request id.
_ANSWERS = frozenset({Kind.REPLY, Kind.CHUNK, Kind.END, Kind.ERROR})
#: Pushes about a channel's members, for its subscription's listeners (and the client's).
_MEMBER_PUSHES = frozenset({"ws:member", "ws:join", "ws:leave"})


class Dispatch:
    """Routes incoming frames; ``refused`` counts those an incoming hook refused."""

    def __init__(
        self,
        listeners: Listeners,
        synced: Synced,
        calls: Calls,
        outbox: Outbox,
        channels: Channels,
        inbox: Inbox,
        performers: Performers,
        tasks: Tasks,
    ) -> None:
        self.refused = 0
        self._listeners = listeners
        self._synced = synced
        self._calls = calls
        self._outbox = outbox
        self._channels = channels
        self._inbox = inbox
        self._performers = performers
        self._tasks = tasks

    async def receive(self, text: str | bytes) -> None:
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            log.warning("the server sent a frame that is not JSON")
            self._listeners.show_raw(text)
            return
        self._listeners.show_raw(obj)
        if not isinstance(obj, dict):
            return
        frame = self._hooked(obj)
        if frame is None:
            return
        parsed = protocol.classify(frame)
        if parsed is None:
            log.warning("the server sent a frame that is not a JSON object with an event")
            return
        if parsed.sync is not None and not self._synchronise(parsed):
            return
        await self._route(parsed)

    def _hooked(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        """The frame as the incoming hooks leave it; None when one refused it (the refusal
        concerns the frame as the hooks before that one left it)."""
        try:
            for hook in self._listeners.incoming_hooks:
                frame = hooked(hook, frame)
        except MonumentWSError as exc:
            self._refuse(frame, exc)
        except Exception:
            log.exception("an incoming frame hook failed")
            self._refuse(frame, InternalError("internal error"))
        else:
            return frame
        return None

    def _refuse(self, frame: dict[str, Any], error: MonumentWSError) -> None:
        """An incoming hook refused ``frame``: answer or fail whatever waited for it."""
        self.refused += 1
        number = frame.get("call")
        if isinstance(number, int) and frame.get("event") != protocol.ERROR_EVENT:
            with contextlib.suppress(MonumentWSError):
                self._outbox.put(protocol.error(error.code, error.message, call=number))
        elif not self._calls.fail(frame.get("id"), error):
            log.debug("an incoming hook refused %r: %s", frame.get("event"), error)

    def _synchronise(self, parsed: ServerFrame) -> bool:
        """Replace the frame's data by the event's object after the SYNC frame is applied;
        False when it does not apply (the frame is then dropped and ``ws:error`` emitted)."""
        frame = parsed.raw
        try:
            frame["data"] = self._synced.apply(parsed.event, frame["sync"], frame.get("data"))
        except SyncError as exc:
            log.warning("SYNC frame for %r dropped: %s", parsed.event, exc)
            error = {"code": "internal", "message": str(exc)}
            self._tasks.spawn(self._listeners.emit("ws:error", error))
            return False
        return True

    async def _route(self, parsed: ServerFrame) -> None:
        frame, kind, event = parsed.raw, parsed.kind, parsed.event
        if kind is Kind.CALL:
            self._tasks.spawn(self._performers.perform(frame))
        elif kind in _ANSWERS and parsed.id is not None:
            if not self._calls.answer(parsed):
                # A late answer (the call timed out, or its stream was left early and
                # cancelled): it answers nothing now and must not reach listeners
                # as a push or as an error about nothing.
                log.debug("dropped an answer to no waiting request: %r", frame.get("id"))
        elif kind is Kind.PUBLICATION:
            self._channels.publication(frame)
        elif kind is Kind.WELCOME:
            return
        elif event == protocol.QUEUE_EVENT and isinstance(frame.get("seq"), int):
            self._inbox.receive(frame["seq"], frame.get("data"))
        elif event == "ws:knock":
            with contextlib.suppress(MonumentWSError):
                heartbeat = {"channels": [frame.get("channel")]}
                self._outbox.put(protocol.push("ws:heartbeat", heartbeat))
        elif event == "ws:resubscribe":
            data = frame.get("data")
            await self._channels.restart(data if isinstance(data, dict) else {})
        elif kind is Kind.ERROR:
            await self._listeners.emit("ws:error", frame.get("error"))
        else:
            if event in _MEMBER_PUSHES:
                self._channels.member(frame)
            await self._listeners.emit(event, parsed.data)
