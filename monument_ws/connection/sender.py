"""The one path by which frames reach a socket's transport, with one stated bound.

Every producer -- replies and errors, stream chunks, pushes, channel fan-out,
server calls -- hands its frame to the socket's :class:`Sender`, either with
:meth:`Sender.offer` (never waits) or :meth:`Sender.send` (waits for room).
Nothing else writes to the transport while the socket is open.

Invariants, whatever the interleaving of producers:

* **Order**: frames reach the transport in the order they were accepted.
* **One writer**: a frame is written at once only when nothing is queued, no
  writer exists and the transport is below its high-water mark; otherwise it
  is queued, and one writer task writes the queue. The writer is created in
  the same step that finds none (no await in between), so producers running
  in one loop turn can never start two.
* **Bound**: the transport is written to only while it holds at most
  ``high_water`` bytes (asyncio's own mark, 64 KiB by default), so it never
  holds more than that plus one write (one frame, or a gathered run of at
  most ``high_water`` bytes plus one frame); the queue never holds more than
  ``max_frames`` frames or ``max_bytes`` bytes. The frame that would cross
  either limit is refused, the whole queue is dropped, the sender closes and
  :attr:`Sender.overflow` says what it held: the socket closes as a slow
  consumer (4008). A socket thus costs at most ``max_bytes + 3 * high_water``
  plus two frames of send buffers, whatever its client does.
* **Closed**: after :meth:`Sender.close` (or when the transport is lost)
  every frame is refused, the queue is gone and :meth:`Sender.drain` returns.
* **Gathering**: between :meth:`Sender.gather` and :meth:`Sender.flush` (the
  fan-out calls them around the publications of one loop turn, see
  :mod:`~monument_ws.channels.fanout`) every accepted frame is appended to a list
  instead, and written with the others in one ``transport.write``: one system
  call for a burst instead of one per frame. Order is kept (nothing bypasses
  the list while it exists); past ``high_water`` bytes it is written early, so
  it never holds more than that.

The counters ``peak_frames``, ``peak_bytes`` and ``peak_writers`` record the
most ever queued and writing at once; the tests check the bound on them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from ..protocol.writer import text_frame

if TYPE_CHECKING:
    from ..protocol.codecs import Codec, CodecSession
    from .stats import Stats


class Transport(Protocol):
    """What the sender needs of an asyncio transport."""

    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool: ...

    def get_write_buffer_size(self) -> int: ...

    def get_write_buffer_limits(self) -> tuple[int, int]: ...


class _Gone:
    """The transport of a connection that was lost before its socket was made."""

    def write(self, data: bytes) -> None:
        raise ConnectionResetError("the connection is gone")

    def is_closing(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return 0, 0


class Flow(Protocol):
    """Waits while the transport is above its high-water mark (aiohttp's ``request.writer``)."""

    async def drain(self) -> None: ...


#: Writes one text frame's payload the way aiohttp does (used with compression, which
#: needs aiohttp's deflate state): ``await ws.send_frame(payload, WSMsgType.TEXT)``.
FrameWriter = Callable[[bytes], Awaitable[None]]


class Sender:
    """The bounded send path of one socket (see the module's invariants).

    ``transport`` is written to directly with whole frames, unless
    ``write_frame`` is given (compression): then every frame is queued and
    the writer hands payloads to it. ``flow.drain()`` returns once the
    transport is no longer paused (below its low-water mark).
    """

    __slots__ = (
        "_flow",
        "_gathered",
        "_gathered_bytes",
        "_high_water",
        "_idle",
        "_max_bytes",
        "_max_frames",
        "_queue",
        "_stats",
        "_transport",
        "_write_frame",
        "_writer",
        "closed",
        "overflow",
        "peak_bytes",
        "peak_frames",
        "peak_writers",
        "queued_bytes",
        "writers",
    )

    def __init__(
        self,
        transport: Transport | None,
        flow: Flow,
        *,
        max_frames: int,
        max_bytes: int,
        stats: Stats,
        write_frame: FrameWriter | None = None,
    ) -> None:
        if transport is None:
            transport = _Gone()
        self._transport = transport
        self._flow = flow
        self._write_frame = write_frame
        self._high_water = transport.get_write_buffer_limits()[1]
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._stats = stats
        # The queue exists only while something waits in it: an empty deque costs 600 bytes.
        self._queue: deque[bytes] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._idle: asyncio.Future[None] | None = None
        # Frames gathered for one write at the end of this loop turn; None when not gathering.
        self._gathered: list[bytes] | None = None
        self._gathered_bytes = 0
        self.closed = transport.is_closing()
        #: ``(frames, bytes)`` the queue held when its bound was crossed; None until then
        self.overflow: tuple[int, int] | None = None
        self.queued_bytes = 0
        self.writers = 0
        self.peak_frames = 0
        self.peak_bytes = 0
        self.peak_writers = 0

    #: the socket's wire format when it is not the native protocol: None here, a session in
    #: :class:`CodecSender`
    codec: CodecSession | None = None
    #: that session's codec (None here): fan-out encodes a frame once per codec, keyed by it
    wire_format: Codec | None = None

    @property
    def queued(self) -> int:
        """Frames waiting in the queue."""
        return len(self._queue) if self._queue is not None else 0

    @property
    def pressed(self) -> bool:
        """The queue is more than half full (by frames or bytes): producers that can wait should."""
        return self.queued * 2 > self._max_frames or self.queued_bytes * 2 > self._max_bytes

    @property
    def busy(self) -> bool:
        """Frames are queued or being written."""
        return self._writer is not None

    def offer(self, payload: bytes, wire: bytes | None = None) -> bool:
        """Accept one frame without waiting; False when refused (closed, or the bound crossed).

        ``payload`` is the frame's JSON; ``wire`` the same already framed by
        :func:`~monument_ws.protocol.text_frame`, which fan-out passes so that
        every subscriber's transport gets the same buffer.
        """
        if self.closed:
            return False
        gathered = self._gathered
        if gathered is not None:
            frame = wire if wire is not None else text_frame(payload)
            gathered.append(frame)
            self._gathered_bytes += len(frame)
            if self._gathered_bytes > self._high_water:
                return self._write_gathered()
            return True
        if self._writer is None and self._write_frame is None:
            transport = self._transport
            if transport.is_closing():
                self.close()
                return False
            if transport.get_write_buffer_size() <= self._high_water:
                transport.write(wire if wire is not None else text_frame(payload))
                self._stats.frames_out += 1
                return True
        return self._enqueue(payload, wire)

    def gather(self) -> bool:
        """Start gathering frames for one write (see the module's invariants); False when it
        cannot (closed, already gathering, or compression, whose frames aiohttp writes)."""
        if self.closed or self._gathered is not None or self._write_frame is not None:
            return False
        self._gathered = []
        return True

    def flush(self) -> bool:
        """Stop gathering and write what was gathered; False when the bound was crossed."""
        if self._gathered is None:
            return True
        ok = self._write_gathered()
        self._gathered = None
        return ok

    def _write_gathered(self) -> bool:
        """Hand the gathered frames on: in one write when the transport has room and nothing
        is queued, else into the queue (bounded like any frame)."""
        gathered = self._gathered
        if not gathered or self.closed:
            return not self.closed
        frames = len(gathered)
        self._gathered = []
        self._gathered_bytes = 0
        transport = self._transport
        if (
            self._writer is None
            and not transport.is_closing()
            and transport.get_write_buffer_size() <= self._high_water
        ):
            transport.write(b"".join(gathered))
            self._stats.frames_out += frames
            return True
        return all(self._enqueue(frame, frame) for frame in gathered)

    async def send(self, payload: bytes, wire: bytes | None = None) -> bool:
        """Accept one frame, then wait while the queue is more than half full.

        Application code that awaits this is slowed down to the client's pace
        instead of getting the socket closed as a slow consumer.
        """
        if not self.offer(payload, wire):
            return False
        if self.queued_bytes and self.pressed:
            await self.drain()
        return True

    async def drain(self) -> None:
        """Wait until everything queued so far has been written (or the sender closed)."""
        if self._gathered:
            await asyncio.sleep(0)  # the turn's gathered frames are written at its end
        if self._writer is None:
            return
        if self._idle is None:
            self._idle = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._idle)

    def close(self) -> int:
        """Refuse every frame from now on and drop the queue; returns how many frames it held."""
        dropped = self.queued + (len(self._gathered) if self._gathered else 0)
        self._gathered = None
        self.closed = True
        if self._queue is not None:
            self._queue.clear()  # a writer in the middle of it stops at its next frame
        self._queue = None
        self.queued_bytes = 0
        self._wake()
        return dropped

    def _enqueue(self, payload: bytes, wire: bytes | None) -> bool:
        item = payload if self._write_frame is not None else wire or text_frame(payload)
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        size = self.queued_bytes + len(item)
        if len(queue) >= self._max_frames or size > self._max_bytes:
            self.overflow = (len(queue), self.queued_bytes)
            self.close()
            return False
        queue.append(item)
        self.queued_bytes = size
        if len(queue) > self.peak_frames:
            self.peak_frames = len(queue)
        if size > self.peak_bytes:
            self.peak_bytes = size
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_queue())
        return True

    async def _write_queue(self) -> None:
        self.writers += 1
        if self.writers > self.peak_writers:
            self.peak_writers = self.writers
        transport, write_frame, high_water = self._transport, self._write_frame, self._high_water
        stats = self._stats
        try:
            while self._queue:
                if transport.is_closing():
                    self.close()
                    break
                if transport.get_write_buffer_size() > high_water:
                    await self._flow.drain()
                    continue
                queue = self._queue
                while queue and transport.get_write_buffer_size() <= high_water:
                    item = queue.popleft()
                    self.queued_bytes -= len(item)
                    if write_frame is None:
                        transport.write(item)
                    else:
                        await write_frame(item)
                    stats.frames_out += 1
        except (ConnectionError, RuntimeError):  # the transport went away mid-write
            self.close()
        finally:
            self.writers -= 1
            self._writer = None
            if not self._queue:
                self._queue = None
            self._wake()

    def _wake(self) -> None:
        idle, self._idle = self._idle, None
        if idle is not None and not idle.done():
            idle.set_result(None)


class CodecSender(Sender):
    """The send path of a socket speaking another wire format (an endpoint's codec): the same
    bounded path, but every frame offered without ``wire`` is first encoded by ``codec``, and
    a frame it drops (encodes to nothing) is taken and not written. A ``wire`` given must be
    in that format already (fan-out asks the codec). Native sockets use :class:`Sender`, whose
    path has no codec test at all."""

    __slots__ = ("_encode", "codec", "wire_format")

    def __init__(
        self,
        transport: Transport | None,
        flow: Flow,
        *,
        max_frames: int,
        max_bytes: int,
        stats: Stats,
        codec: CodecSession,
    ) -> None:
        super().__init__(transport, flow, max_frames=max_frames, max_bytes=max_bytes, stats=stats)
        self.codec = codec
        self.wire_format = codec.codec
        self._encode = codec.encode

    def offer(self, payload: bytes, wire: bytes | None = None) -> bool:
        if wire is None and not self.closed:
            wire = self._encode(payload)
            if not wire:
                return True
        return super().offer(payload, wire)
