"""The codec contract: how a foreign wire format sits between a socket and the native core.

The core (routing, limits, admission, middleware, the send path) only knows native frames
(docs/protocol.md): JSON objects as bytes. A :class:`Codec` translates at the two edges of a
socket served on an endpoint of its format (``setup(app, endpoints={"/ss": name})``):

* **in**: :meth:`CodecSession.decode` turns one WebSocket message (text or binary) into zero or
  more items: native frames (``bytes`` of a JSON object, read exactly as a native text frame
  is), :class:`~monument_ws.protocol.frames.Invalid` (refused like a bad native frame: an error
  frame, which the session encodes in its format, or a close when ``close`` is set), or a
  :class:`Reply` (bytes written to the socket as they are: a heartbeat's answer, say);
* **out**: :meth:`CodecSession.encode` turns one native frame the core sends to this socket
  (reply, chunk, end, error, push, server call, welcome, and a channel publication replayed
  to this socket alone by a recovery) into the whole WebSocket frame(s) to write, or ``b""``
  to drop it when the format has no such concept;
* **fan-out**: :meth:`Codec.encode_shared` encodes a frame for many sockets (a channel
  publication, a broadcast, a join/leave push) once per codec, not per socket; it must not
  depend on any socket's state. The fan-out caches its result per codec for one delivery.

Two optional hooks, for formats that need them: :meth:`CodecSession.closing` (frames written
before the server's close frame, and the close code the format uses: super-scaled-sockets'
BOOT) and :attr:`Codec.heartbeat` (a frame the server writes every ``heartbeat`` seconds to
each socket of the format). Their defaults do nothing.

A stateless format can return the codec itself from :meth:`Codec.session`; a stateful one
(serverless-sockets' SYNC diffs need the frame the client holds) returns a new session per
socket, which lives and dies with it. Sessions must bound their memory themselves.

The native protocol is no codec: a native socket's codec is None, and the core's hot paths
test for that before anything else, so it costs nothing.

To add a format: a module here with a :class:`Codec` subclass, and its name in
:data:`monument_ws.protocol.codecs.CODECS`. This module does no I/O.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from ..frames import Invalid


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes to write to the socket as they are (whole WebSocket frames), answering a message at
    the protocol level without the core (a format's heartbeat)."""

    wire: bytes


#: What one incoming message decodes to, item by item, in order.
Decoded: TypeAlias = Sequence[bytes | Invalid | Reply]


class CodecSession(abc.ABC):
    """One socket's side of a codec: what it decodes and encodes for that socket."""

    __slots__ = ()

    @property
    @abc.abstractmethod
    def codec(self) -> Codec:
        """The codec this session belongs to (the fan-out caches shared encodings by it)."""

    @abc.abstractmethod
    def decode(self, data: bytes, binary: bool) -> Decoded:
        """One incoming WebSocket message (``binary`` or text, as bytes). Never raises."""

    @abc.abstractmethod
    def encode(self, frame: bytes) -> bytes:
        """One native frame for this socket, as whole WebSocket frame(s); ``b""``: dropped."""

    def closing(self, code: int, reason: str) -> tuple[bytes, int]:
        """The server closes this socket with ``code`` (a native close code) and ``reason``:
        the whole WebSocket frame(s) to write before the close frame, and the close code the
        close frame carries in this format. The default writes nothing and keeps ``code``;
        the socket's :attr:`close_code` (events, logs) is the native one either way."""
        return b"", code


class Codec(abc.ABC):
    """A wire format, shared by every socket of its endpoints; registered by :attr:`name`."""

    #: the name endpoints give (``endpoints={"/ss": "serverless-sockets"}``)
    name: ClassVar[str]
    #: subprotocols the endpoint offers at the upgrade; empty: none is checked or chosen
    subprotocols: ClassVar[tuple[str, ...]] = ()
    #: whether the core may send this format's sockets SYNC patches (``"sync": "patch"``);
    #: False: every SYNC object comes whole (``"full"``), and the core keeps none of them
    sync_patches: ClassVar[bool] = True
    #: whole WebSocket frame(s) the server writes to every socket of this format each
    #: ``heartbeat`` seconds (the setting; 0 disables it), for a format whose client expects a
    #: heartbeat of its own besides the WebSocket ping; empty: none
    heartbeat: ClassVar[bytes] = b""
    #: whether the format carries server → client calls (``socket.call``); False: such a call
    #: fails at once with NotFound instead of waiting for its timeout
    server_calls: ClassVar[bool] = True

    @abc.abstractmethod
    def session(self) -> CodecSession:
        """The session of one new socket (a stateless codec may return the same one each time)."""

    @abc.abstractmethod
    def encode_shared(self, frame: bytes) -> bytes:
        """A native frame sent to many sockets (channel publication, broadcast, join/leave),
        as whole WebSocket frame(s), the same bytes for every socket of this codec; ``b""``:
        dropped. Must not depend on any session's state."""
