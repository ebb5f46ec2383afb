"""The outbox: every outgoing frame waits here, in order, until a socket takes it.

Tells, calls, answers to server calls, heartbeats and cancels all go through one
outbox of at most ``limit`` frames (the Client's ``outbox_limit``), so the server
receives them in the order they were made, whether the client was online at the
time or not. A frame leaves the outbox only once it was written; one whose send
failed stays first in line for the next connection. A full outbox refuses new
frames (:class:`QueueFull`) and never drops one it already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Protocol

import aiohttp

from ..protocol.errors import QueueFull, TooLarge
from .listeners import Listeners
from .status import Status


class Request(Protocol):
    """A call whose frame waits here: the outbox keeps ``frame`` as the outgoing hooks
    left it (a retry resends exactly that) and sets ``sent`` once it is written."""

    frame: bytes
    sent: bool


class Outbox:
    def __init__(self, limit: int, status: Status, listeners: Listeners) -> None:
        self.limit = limit
        self._status = status
        self._listeners = listeners
        self._frames: deque[tuple[bytes, Request | None]] = deque()
        self._wake = asyncio.Event()  # set when a frame is added
        #: the request whose frame was written last (None: the last frame was no request's);
        #: a 1009 close blames it
        self.last_sent: Request | None = None

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: bytes, request: Request | None = None) -> None:
        """Add ``frame`` after the outgoing hooks ran on it.

        Raises what a hook raises, :class:`TooLarge` when the frame is over the
        server's ``max_message_size``, :class:`QueueFull` when ``limit`` frames wait.
        """
        frame = self._listeners.hook_outgoing(frame)
        if request is not None:
            request.frame = frame
        limit = self._status.welcome.get("max_message_size")
        if isinstance(limit, int) and len(frame) > limit:
            raise TooLarge(f"the frame has {len(frame)} bytes; the server accepts {limit}")
        if len(self._frames) >= self.limit:
            raise QueueFull(f"the outbox is full: {self.limit} frames are waiting to be sent")
        self._frames.append((frame, request))
        self._wake.set()

    def remove(self, request: Request) -> None:
        """Take back the frame of ``request`` if it is still waiting (a call given up)."""
        if not request.sent:
            with contextlib.suppress(ValueError):
                self._frames.remove((request.frame, request))

    def put_back(self, requests: list[Request]) -> None:
        """Put the frames of ``requests`` first in line again, in that order (calls retried
        after a reconnect go out before anything added while offline)."""
        for request in requests:
            request.sent = False
        self._frames.extendleft((request.frame, request) for request in reversed(requests))

    def clear(self) -> None:
        self._frames.clear()

    async def write(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send the outbox's frames in order while this connection lives."""
        self.last_sent = None
        try:
            while not ws.closed:
                while self._frames and not ws.closed:
                    frame, request = self._frames[0]
                    await ws.send_frame(frame, aiohttp.WSMsgType.TEXT)
                    self._frames.popleft()  # only once written: a failed send stays in the outbox
                    self.last_sent = request
                    if request is not None:
                        request.sent = True
                self._wake.clear()
                await self._wake.wait()
        except (aiohttp.ClientError, ConnectionError):
            return  # the reader sees the close and reconnects
