"""serverless-sockets' wire format, so its browser client can talk to a monument_ws server.

Every message is one **binary** WebSocket frame (docs/protocol.md, "serverless-sockets")::

    bytes 0-3   the whole frame's length, uint32 big-endian (header included)
    byte  4     the type: MESSAGE 0, BROADCAST 1, AUTH 2, SYNC 3, ERROR 4, NOT_FOUND 5,
                CUSTOM_1..5 6..10
    byte  5     n, the event name's length in bytes (so at most 255)
    6..6+n      the event name, UTF-8
    the rest    the payload, JSON in UTF-8 (empty: null)

**In.** A frame becomes the native request ``{"event", "id", "data": payload}`` with an id this
session makes up, so every request gets its answers routed back; its type byte is ignored. A
text frame closes the socket with 1003; a frame shorter than its header, whose declared length
is not its real length, whose event runs past its end or is not UTF-8, or whose payload is not
JSON is refused as ``bad_frame`` (an ERROR frame; ``max_bad_frames`` in a row close with 1008).
The size limit (``max_message_size``) applies to the real size, before this runs.

**Out**, per native frame:

* a reply or stream chunk goes out under its event (the request's; a data event's ``x:set:y``)
  as MESSAGE, or CUSTOM_n for a plug's ``custom(n, …)`` yield; a final reply whose data is
  null (a generator's end, a broadcast-only handler) and a stream's end are dropped: the
  format has no end of reply;
* a SYNC yield (always ``"sync": "full"`` here) becomes a SYNC frame whose payload is the byte-run
  diff the client's ``syncIncoming`` applies: ``[[length delta], [position, byte, …], …]``
  from the frame the client holds to the frame carrying the whole new object. The first diff of
  a request is against the client's own request frame, each later one against the previous
  frame it rebuilt. Unlike serverless-sockets' own server, changed zero bytes are part of their run. A SYNC pushed
  under another event (no request to diff against) goes out whole, as MESSAGE;
* an error: NOT_FOUND for ``not_found``, else ERROR, under the request's event, the payload
  ``{"code", "message"}``;
* a channel publication (and any push naming a ``channel``: join/leave, member, knock):
  BROADCAST under its event, the payload ``{"channel", "data", "offset"}`` (``offset`` only
  for a publication); a broadcast: BROADCAST, the payload its data. Both are encoded once for
  all the codec's sockets;
* any other push: MESSAGE (CUSTOM_n when typed) under its event;
* the welcome: dropped. Server → client calls never reach here: the format has none
  (:attr:`Codec.server_calls` is False), so ``socket.call`` fails at once with NotFound.

The core sends this format's sockets every SYNC object whole (:attr:`Codec.sync_patches` is
False), so no object is kept here: the diff is computed from the whole frames.

Memory per socket is bounded: at most :data:`MAX_PENDING` requests are remembered, holding at
most :data:`MAX_HELD_BYTES` of frames (plus the newest one); the oldest is forgotten first.
A forgotten request's answers still go out under their event (native answers carry it), its
errors under ``ws:error`` and its SYNC objects whole, as MESSAGE.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

import orjson

from ..frames import ERROR_EVENT, WELCOME_EVENT, CloseCode, ErrorCode, Invalid
from ..patches import FULL
from ..writer import binary_frame
from .base import Codec, CodecSession, Decoded

MESSAGE: Final = 0
BROADCAST: Final = 1
AUTH: Final = 2
SYNC: Final = 3
ERROR: Final = 4
NOT_FOUND: Final = 5
#: ``"type": "custom_<n>"`` on a native frame -> its type number
CUSTOM: Final = {f"custom_{n}": 5 + n for n in range(1, 6)}

#: header bytes before the event name
HEADER: Final = 6
#: requests remembered per socket for routing answers back (the oldest is forgotten first)
MAX_PENDING: Final = 1024
#: bytes of frames (requests, then rebuilt SYNC frames) the remembered requests may hold
MAX_HELD_BYTES: Final = 1_048_576

_TEXT = Invalid(
    ErrorCode.BAD_FRAME,
    "text frames are not supported on this endpoint; send serverless-sockets binary frames",
    close=CloseCode.UNSUPPORTED_DATA,
)


def pack(kind: int, event: str, payload: bytes) -> bytes:
    """One frame of the format (without the WebSocket header). An event name over 255 bytes
    is cut at a character boundary: the format cannot carry more."""
    name = event.encode()
    if len(name) > 255:
        name = name[:255].decode(errors="ignore").encode()
    size = HEADER + len(name) + len(payload)
    return size.to_bytes(4, "big") + bytes((kind, len(name))) + name + payload


def diff(old: bytes, new: bytes) -> list[list[int]]:
    """The byte-run diff from ``old`` to ``new``: ``[[len(new) - len(old)], [pos, bytes…], …]``,
    one run per stretch of positions where ``new`` differs from ``old`` (or ``old`` ends)."""
    out: list[list[int]] = [[len(new) - len(old)]]
    run: list[int] | None = None
    common = len(old)
    for i, byte in enumerate(new):
        if i < common and old[i] == byte:
            run = None
            continue
        if run is None:
            run = [i]
            out.append(run)
        run.append(byte)
    return out


def _frame(kind: int, event: str, payload: Any) -> bytes:
    return binary_frame(pack(kind, event, orjson.dumps(payload)))


def _native(frame: bytes) -> dict[str, Any] | None:
    """A native frame as an object; None for what is not one (an outgoing hook's odd rewrite):
    the format has nothing to carry it in, so it is dropped rather than raising in a send."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("event"), str) else None


def _type_of(obj: dict[str, Any]) -> int:
    kind = obj.get("type")
    return CUSTOM.get(kind, MESSAGE) if isinstance(kind, str) else MESSAGE


class ServerlessSockets(Codec):
    """The serverless-sockets format (stateful per socket: SYNC diffs, request events)."""

    name = "serverless-sockets"
    sync_patches = False
    server_calls = False

    def session(self) -> Session:
        return Session(self)

    def encode_shared(self, frame: bytes) -> bytes:
        obj = _native(frame)
        if obj is None:
            return b""
        if "channel" in obj:
            body = {"channel": obj["channel"], "data": obj.get("data")}
            if "offset" in obj:
                body["offset"] = obj["offset"]
            return _frame(BROADCAST, obj["event"], body)
        return _frame(BROADCAST, obj["event"], obj.get("data"))


class _Pending:
    """A request of this socket: its event, and the frame the client holds for its SYNC diffs."""

    __slots__ = ("base", "event")

    def __init__(self, event: str, base: bytes) -> None:
        self.event = event
        self.base = base


class Session(CodecSession):
    """One socket's serverless-sockets state: its open requests, each with the frame its client
    holds for SYNC diffs."""

    __slots__ = ("_codec", "_held", "_next_id", "_pending")

    def __init__(self, codec: ServerlessSockets) -> None:
        self._codec = codec
        self._next_id = 0
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._held = 0  # bytes of the frames in _pending

    @property
    def held(self) -> int:
        """Bytes of frames the remembered requests hold now."""
        return self._held

    @property
    def codec(self) -> ServerlessSockets:
        return self._codec

    @property
    def pending(self) -> int:
        """Requests remembered now (never more than :data:`MAX_PENDING`)."""
        return len(self._pending)

    # --- in ---------------------------------------------------------------------

    def decode(self, data: bytes, binary: bool) -> Decoded:
        if not binary:
            return (_TEXT,)
        size = len(data)
        if size < HEADER:
            return (_bad(f"truncated header: {size} bytes, a frame has at least {HEADER}"),)
        declared = int.from_bytes(data[:4], "big")
        if declared != size:
            return (_bad(f"the header declares {declared} bytes but the frame has {size}"),)
        end = HEADER + data[5]
        if end > size:
            return (_bad(f"the event's {data[5]} bytes run past the frame's end"),)
        try:
            event = data[HEADER:end].decode()
            payload = orjson.loads(data[end:]) if end < size else None
        except (UnicodeDecodeError, orjson.JSONDecodeError):
            return (_bad("the event must be UTF-8 and the payload JSON"),)
        self._next_id += 1
        request_id = self._next_id
        self._pending[request_id] = _Pending(event, bytes(data))
        self._held += size
        self._bound()
        return (orjson.dumps({"event": event, "id": request_id, "data": payload}),)

    # --- out --------------------------------------------------------------------

    def encode(self, frame: bytes) -> bytes:
        obj = _native(frame)
        if obj is None:
            return b""
        event: str = obj["event"]
        if event == WELCOME_EVENT or "call" in obj:
            return b""
        if "channel" in obj:  # a publication sent to this socket alone (a replay)
            return self._codec.encode_shared(frame)
        request_id = obj.get("id")
        pending = self._pending.get(request_id) if isinstance(request_id, int) else None
        final = obj.get("more") is not True
        if final and pending is not None:
            del self._pending[obj["id"]]
            self._held -= len(pending.base)
        if event == ERROR_EVENT:
            return self._error(obj, pending)
        if obj.get("end") is True:
            return b""
        mode = obj.get("sync")
        if mode is not None:
            return self._synced(event, mode, obj.get("data"), pending, final)
        if final and request_id is not None and obj.get("data") is None:
            return b""
        return _frame(_type_of(obj), event, obj.get("data"))

    def _error(self, obj: dict[str, Any], pending: _Pending | None) -> bytes:
        error = obj.get("error") or {}
        kind = NOT_FOUND if error.get("code") == ErrorCode.NOT_FOUND else ERROR
        event = pending.event if pending is not None else ERROR_EVENT
        return _frame(kind, event, {"code": error.get("code"), "message": error.get("message")})

    def _synced(
        self, event: str, mode: Any, data: Any, pending: _Pending | None, final: bool
    ) -> bytes:
        """A native SYNC frame (always whole here): the diff from the frame the client holds."""
        if mode != FULL:  # the core sends this codec's sockets whole objects only
            return _frame(ERROR, event, {"code": "internal", "message": "a SYNC patch"})
        if pending is None:
            return _frame(MESSAGE, event, data)
        whole = pack(SYNC, pending.event, orjson.dumps(data))
        runs = diff(pending.base, whole)
        if not final:  # the request goes on: its next diff starts from this frame
            self._held += len(whole) - len(pending.base)
            pending.base = whole
            self._bound()
        return binary_frame(pack(SYNC, pending.event, orjson.dumps(runs)))

    def _bound(self) -> None:
        """Forget the oldest requests while more than the bounds are remembered (the newest
        is kept whatever its size)."""
        pending = self._pending
        while len(pending) > 1 and (len(pending) > MAX_PENDING or self._held > MAX_HELD_BYTES):
            _, oldest = pending.popitem(last=False)
            self._held -= len(oldest.base)


def _bad(message: str) -> Invalid:
    return Invalid(ErrorCode.BAD_FRAME, message)
