"""Requests waiting for their answers: calls (one reply) and streams (chunks, then an end).

Each request gets the next integer id and waits in a table until the frame with
that id answers it, its timeout passes (the server is then told to cancel), or the
connection fails it. An answer that finds nobody waiting (a call that timed out, a
stream left early) is dropped by the dispatcher, never shown as a push.

When the connection drops, a call already sent fails with :class:`ConnectionLost`
unless it was made with ``retry=True``: its frame then goes back to the front of
the outbox, so it is sent again first thing after the reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from .. import protocol
from ..protocol.errors import (
    ConnectionLost,
    MonumentWSError,
    Timeout,
    TooLarge,
    from_error_frame,
)
from ..protocol.frames import Kind, ServerFrame
from .outbox import Outbox, Request
from .status import Status

#: The default of a ``timeout`` argument: the client's ``call_timeout``.
DEFAULT: Any = object()


class Call:
    """A request with an id waiting for its answer (or, for a stream, its chunks)."""

    __slots__ = ("chunks", "frame", "future", "retry", "sent")

    def __init__(self, frame: bytes, retry: bool, stream: bool) -> None:
        self.frame = frame
        self.retry = retry
        self.sent = False
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.chunks: asyncio.Queue[tuple[str, Any]] | None = asyncio.Queue() if stream else None

    def fail(self, error: MonumentWSError) -> None:
        if self.chunks is not None:
            self.chunks.put_nowait(("error", error))
        if not self.future.done():
            self.future.set_exception(error)
            self.future.exception()  # mark retrieved: the caller may be gone

    def answer(self, frame: ServerFrame) -> None:
        if frame.kind is Kind.ERROR:
            error = from_error_frame(frame.raw.get("error"))
            error.remote = True
            self.fail(error)
        elif self.chunks is not None:
            if frame.kind is Kind.CHUNK:
                self.chunks.put_nowait(("chunk", frame.data))
            elif frame.kind is Kind.END:
                self.chunks.put_nowait(("end", None))
            else:
                self.chunks.put_nowait(("reply", frame.data))
        elif not self.future.done():
            self.future.set_result(frame.data)


class Calls:
    """The table of requests waiting for an answer, by id; ``timeout`` is the default wait."""

    def __init__(self, outbox: Outbox, status: Status, timeout: float) -> None:
        self.timeout = timeout
        self._outbox = outbox
        self._status = status
        self._next_id = 1
        self._waiting: dict[int, Call] = {}

    async def call(
        self,
        event: str,
        data: Any = None,
        *,
        timeout: float | None = DEFAULT,
        retry: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> Any:
        """The reply's data; raises the server's error, :class:`Timeout` or ConnectionLost.
        ``extra`` adds top-level keys to the frame (see :func:`frame_of`)."""
        request_id, call = self._request(event, data, retry=retry, stream=False, extra=extra)
        timeout = self.timeout if timeout is DEFAULT else timeout
        try:
            async with asyncio.timeout(timeout or None):
                return await call.future
        except TimeoutError:
            self._cancel_remote(request_id, call)
            raise Timeout(f"no answer to {event!r} within {timeout:g} s") from None
        finally:
            self._forget(request_id, call)

    async def stream(self, event: str, data: Any = None) -> AsyncIterator[Any]:
        """The chunks of a streamed reply (a plain reply as the only one); leaving early
        cancels the request on the server."""
        request_id, call = self._request(event, data, retry=False, stream=True)
        assert call.chunks is not None
        finished = False
        try:
            while True:
                kind, value = await call.chunks.get()
                if kind == "chunk":
                    yield value
                elif kind == "end":
                    finished = True
                    return
                elif kind == "reply":
                    finished = True
                    yield value
                    return
                else:
                    finished = True
                    raise value
        finally:
            if not finished:
                self._cancel_remote(request_id, call)
            self._forget(request_id, call)

    def answer(self, frame: ServerFrame) -> bool:
        """Hand ``frame`` to the request with its id; False if none waits for it."""
        call = self._find(frame.id)
        if call is None:
            return False
        call.answer(frame)
        return True

    def fail(self, request_id: object, error: MonumentWSError) -> bool:
        """Fail the request with ``request_id``; False if none waits for it."""
        call = self._find(request_id)
        if call is None:
            return False
        call.fail(error)
        return True

    def dropped(self, too_big: Request | None = None) -> None:
        """The connection is gone: sent calls fail, or go back in the outbox with ``retry``.

        ``too_big`` is the call whose frame the server refused with 1009: it fails with
        TooLarge, retry or not, since sending it again would only close the next socket too.
        """
        retried: list[Request] = []
        for call in list(self._waiting.values()):
            if not call.sent:
                continue
            if call is too_big:
                call.fail(TooLarge("the server closed with 1009: the message was too big"))
            elif call.retry:
                retried.append(call)
            else:
                call.fail(ConnectionLost("the connection dropped before the answer came"))
        self._outbox.put_back(retried)

    def fail_all(self, message: str) -> None:
        """The client closed for good: every waiting request fails with ConnectionLost."""
        for call in list(self._waiting.values()):
            call.fail(ConnectionLost(message))

    def _find(self, request_id: object) -> Call | None:
        return self._waiting.get(request_id) if isinstance(request_id, int) else None

    def _request(
        self,
        event: str,
        data: Any,
        *,
        retry: bool,
        stream: bool,
        extra: dict[str, Any] | None = None,
    ) -> tuple[int, Call]:
        if self._status.ended:
            raise ConnectionLost("the client is closed")
        frame = frame_of(event, data, extra, self._next_id)
        request_id = self._next_id
        self._next_id += 1
        call = Call(protocol.encode(frame), retry, stream)
        self._outbox.put(call.frame, call)
        self._waiting[request_id] = call
        return request_id, call

    def _forget(self, request_id: int, call: Call) -> None:
        if self._waiting.get(request_id) is call:
            del self._waiting[request_id]
        self._outbox.remove(call)

    def _cancel_remote(self, request_id: int, call: Call) -> None:
        if call.sent and self._status.connected:
            with contextlib.suppress(MonumentWSError):
                self._outbox.put(protocol.push("ws:cancel", {"id": request_id}))


def frame_of(
    event: str, data: Any, extra: dict[str, Any] | None, request_id: int | None = None
) -> dict[str, Any]:
    """The frame of a tell, or of a call with ``request_id``: ``event``, ``data`` and the ``extra``
    top-level keys, which a server hands to passthrough receivers as part of the message
    (monument's ``{"event": "authorize", "credentialsObj": {...}}``). Raises ValueError for
    extra keys the protocol reserves (``event``, ``id``, ``data``, ``channel`` …) or that
    are not strings, before anything enters the outbox."""
    if extra is not None:
        problem = protocol.check_extra(extra)
        if problem is not None:
            raise ValueError(problem)
    frame: dict[str, Any] = {"event": event}
    if request_id is not None:
        frame["id"] = request_id
    frame["data"] = data
    return {**frame, **extra} if extra else frame
