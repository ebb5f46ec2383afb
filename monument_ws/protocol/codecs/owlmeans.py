"""@owlmeans/socket's wire format, so its client (``Connection`` with ``call``, ``request``,
``notify``, ``enqueue``, ``auth``) can talk to a monument_ws server.

Every message is one JSON object in a **text** frame, an envelope
``{"type", "id"?, "payload", …}`` (docs/protocol.md, "@owlmeans/socket"). A missing ``type``
means ``message``; a missing ``payload`` is null, except that a bare object (neither) is a
message carrying itself, as its client reads one. (Its client also reads a null ``payload`` it
receives as the envelope itself: that is not copied here, and cannot be helped out there.)

Made-up native request ids carry the envelope's kind, so answers find their way back without a
table: ``c:<id>`` a call, ``r:<id>`` a request, ``a:<n>`` an auth stage, ``m:<n>`` a message
for the peer queue, ``p:<n>`` a ping.

**In**, by ``type``:

* ``call`` ``{id, method, payload, timeout?}`` → the request ``{"event": method, "id":
  "c:<id>", "data"}``; ``payload`` is the argument list (its client spreads it): one argument
  is the data, none is null, several are the list. ``timeout`` (ms, 0: none) starts a deadline
  after which the answer is dropped, as its callee does;
* ``result`` / ``error`` ``{id, payload}`` → ``ws:result`` / ``ws:error`` answering the server
  call whose id it echoes (an id this session did not issue answers nothing: dropped as late);
  an error's payload ``"<type>|||<message>|||<stack>"`` becomes the code of its type;
* ``request`` ``{id, payload: {"event", "data"?}}`` → the request ``{"event", "id": "r:<id>",
  "data"}``: a stream's chunks come back as ``response`` frames;
* ``event`` ``{event, payload}`` → ``{"event", "data"}`` without an id (a tell);
* ``message`` ``{payload, id?}`` → ``ws:enqueue``: the server's peer queue holds the payload
  (the id is not kept; its ``seq`` reply is not sent: the format's enqueue is not answered);
* ``auth`` ``{stage, payload}`` → ``ws:auth`` with ``{"stage", **payload}`` (an object
  payload) or ``{"stage", "payload"}``;
* ``ping`` → ``ws:ping`` (rate-limited as any frame), answered ``{"type": "pong"}``;
* a ``response`` (this server sends no requests: no client → server streams) is refused as
  ``not_found``; ``system`` and any other type, an envelope that is not an object, a missing or
  non-string ``id``/``method``/``event``/``stage`` where one is needed, and text that is not
  JSON are refused as ``bad_frame`` / ``bad_json`` (counted in ``max_bad_frames``). A binary
  frame closes the socket with 1003.

**Out**, per native frame: a reply to a call → ``result`` (a generator's first chunk is the
result, the rest of that call is dropped); an error to a call → ``error`` with the marshalled
error; a request's chunk → ``response``, its final reply or end → ``response`` with ``"end":
true``, an error → ``response`` with ``"error": true, "end": true`` and the marshalled error as
payload; an auth reply → ``auth`` with the next stage, a refusal → ``auth`` with ``stage: null``
and the marshalled error; a server call → ``call`` ``{id, method, payload: [data], timeout:
0}``; a peer-queue push → ``message`` ``{payload, id: "<seq>"}``; any other push or a channel
publication → ``event`` (``channel`` and ``offset`` kept); the welcome → ``system`` ``welcome``;
an error about a frame (no id) → ``system`` ``error``. Errors are marshalled
``"<type>|||<message>|||"`` with the class names of its error package (:data:`ERROR_TYPES`), so
its client rebuilds them typed.

Memory per socket is bounded: at most :data:`MAX_PENDING` unanswered calls are remembered (for
their deadline and their one result); the oldest is forgotten first, and its answer dropped.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, TypeGuard

import orjson

from ..frames import ERROR_EVENT, QUEUE_EVENT, WELCOME_EVENT, CloseCode, ErrorCode, Invalid
from ..writer import text_frame
from .base import Codec, CodecSession, Decoded

#: unanswered calls remembered per socket (the oldest is forgotten first)
MAX_PENDING: Final = 4096
#: the longest envelope id taken (native string ids have at most 64 characters, 2 are a prefix)
MAX_ID: Final = 62

#: our error code -> the class name (``type``) of @owlmeans/socket's error and its message prefix
ERROR_TYPES: Final[dict[str, tuple[str, str]]] = {
    ErrorCode.BAD_JSON: ("SocketErrorMessageMalformed", "socket:message:malformed:"),
    ErrorCode.BAD_FRAME: ("SocketErrorMessageMalformed", "socket:message:malformed:"),
    ErrorCode.MISSING_EVENT: ("SocketErrorMessageMalformed", "socket:message:malformed:"),
    ErrorCode.DUPLICATE_ID: ("SocketErrorMessage", "socket:message:"),
    ErrorCode.TOO_LARGE: ("SocketErrorMessage", "socket:message:"),
    ErrorCode.NOT_FOUND: ("SocketErrorConnectionUnsupported", "socket:connection:unsupported:"),
    ErrorCode.UNAUTHORIZED: (
        "SocketErrorConnectionUnauthorized",
        "socket:connection:unauthorized:",
    ),
    ErrorCode.FORBIDDEN: ("SocketErrorConnectionUnauthorized", "socket:connection:unauthorized:"),
    ErrorCode.TIMEOUT: ("SocketErrorTimeout", "socket:timeout:"),
    ErrorCode.UNAVAILABLE: ("SocketErrorConnection", "socket:connection:"),
}
#: any other code (rate_limited, cancelled, internal)
OTHER_ERROR: Final = ("SocketError", "socket:")
#: the class name of an error a client answers a server call with -> our code
CODES: Final[dict[str, ErrorCode]] = {
    "SocketErrorMessageMalformed": ErrorCode.BAD_FRAME,
    "SocketErrorMessage": ErrorCode.BAD_FRAME,
    "SocketErrorConnectionUnsupported": ErrorCode.NOT_FOUND,
    "SocketErrorConnectionUnauthorized": ErrorCode.UNAUTHORIZED,
    "SocketErrorTimeout": ErrorCode.TIMEOUT,
    "SocketErrorConnection": ErrorCode.UNAVAILABLE,
}

SEPARATOR: Final = "|||"

_BINARY = Invalid(
    ErrorCode.BAD_FRAME,
    "binary frames are not supported on this endpoint; send @owlmeans/socket JSON text",
    close=CloseCode.UNSUPPORTED_DATA,
)
_PONG: Final = text_frame(b'{"type":"pong"}')


def marshal(code: Any, message: str) -> str:
    """An error as @owlmeans/socket carries it: ``"<type>|||<message>|||"`` (no stack)."""
    kind, prefix = ERROR_TYPES.get(code, OTHER_ERROR)
    return f"{kind}{SEPARATOR}{prefix}{message}{SEPARATOR}"


def unmarshal(payload: Any) -> dict[str, str]:
    """A marshalled error from the client as a native ``error`` object; an unknown type (the
    client's own error classes) is ``internal`` with the whole message kept."""
    if not isinstance(payload, str):
        return {"code": ErrorCode.INTERNAL, "message": str(payload)}
    kind, _, rest = payload.partition(SEPARATOR)
    message = rest.partition(SEPARATOR)[0] if rest else payload
    return {"code": CODES.get(kind, ErrorCode.INTERNAL), "message": message}


def call_id(number: int) -> str:
    """The envelope id of server call ``number``: uuid-shaped, as its client's ids are."""
    return str(uuid.UUID(int=number))


def call_number(envelope_id: str) -> int:
    """The server call an echoed id names; 0 (never a call) for an id not issued here."""
    try:
        value = uuid.UUID(envelope_id).int
    except ValueError:
        return 0
    return value if 0 < value < 2**53 and call_id(value) == envelope_id else 0


def _text(obj: dict[str, Any]) -> bytes:
    return text_frame(orjson.dumps(obj))


def _native(frame: bytes) -> dict[str, Any] | None:
    """A native frame as an object; None for what is not one (an outgoing hook's odd rewrite)."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("event"), str) else None


def _event(obj: dict[str, Any]) -> bytes:
    """A push or channel publication as an ``event`` envelope."""
    out: dict[str, Any] = {"type": "event", "event": obj["event"], "payload": obj.get("data")}
    if "channel" in obj:
        out["channel"] = obj["channel"]
        if "offset" in obj:
            out["offset"] = obj["offset"]
    return _text(out)


class Owlmeans(Codec):
    """The @owlmeans/socket format. ``clock`` (seconds) measures calls' deadlines."""

    name = "owlmeans"
    sync_patches = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock

    def session(self) -> Session:
        return Session(self)

    def encode_shared(self, frame: bytes) -> bytes:
        obj = _native(frame)
        return b"" if obj is None else _event(obj)


class Session(CodecSession):
    """One socket's @owlmeans/socket state: its unanswered calls (for their deadline and their
    one result) and the counter of made-up ids."""

    __slots__ = ("_calls", "_codec", "_next")

    def __init__(self, codec: Owlmeans) -> None:
        self._codec = codec
        self._next = 0
        #: envelope id of an unanswered call -> its deadline (clock seconds), None: no deadline
        self._calls: OrderedDict[str, float | None] = OrderedDict()

    @property
    def codec(self) -> Owlmeans:
        return self._codec

    @property
    def pending(self) -> int:
        """Unanswered calls remembered now (never more than :data:`MAX_PENDING`)."""
        return len(self._calls)

    # --- in ---------------------------------------------------------------------

    def decode(self, data: bytes, binary: bool) -> Decoded:
        if binary:
            return (_BINARY,)
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return (Invalid(ErrorCode.BAD_JSON, "not JSON: send an @owlmeans/socket envelope"),)
        if not isinstance(obj, dict):
            return (_bad("an envelope must be a JSON object"),)
        kind = obj.get("type", "message")
        # a bare object (neither type nor payload) is a message carrying itself, as its client
        # reads one; otherwise a missing payload is null (its client would take the envelope)
        payload = obj if "type" not in obj and "payload" not in obj else obj.get("payload")
        take = _TAKE.get(kind) if isinstance(kind, str) else None
        if take is None:
            return (_bad(f"unknown envelope type {kind!r}"),)
        return take(self, obj, payload)

    def _call(self, obj: dict[str, Any], payload: Any) -> Decoded:
        envelope_id = obj.get("id")
        if not _valid_id(envelope_id):
            return (_bad(f"a call needs an 'id': a string of 1 to {MAX_ID} characters"),)
        if envelope_id in self._calls:  # not answered under its id: that is the first call's
            return (Invalid(ErrorCode.DUPLICATE_ID, f"call {envelope_id!r} is in flight"),)
        native_id = "c:" + envelope_id
        self._calls[envelope_id] = None  # from here on, it is answered once, refusal or result
        while len(self._calls) > MAX_PENDING:
            self._calls.popitem(last=False)
        method = obj.get("method")
        if not isinstance(method, str) or not method:
            return (_bad("a call needs a 'method': a non-empty string", native_id),)
        timeout = obj.get("timeout", 0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            return (_bad("a call's 'timeout' must be milliseconds >= 0", native_id),)
        if timeout:
            self._calls[envelope_id] = self._codec.clock() + timeout / 1000
        return (_request(method, native_id, _arguments(payload)),)

    def _answer(self, obj: dict[str, Any], payload: Any) -> Decoded:
        envelope_id = obj.get("id")
        if not isinstance(envelope_id, str):
            return (_bad(f"a {obj['type']} needs the 'id' of the call it answers"),)
        number = call_number(envelope_id)
        if obj["type"] == "result":
            answer = {"event": "ws:result", "call": number, "data": payload}
        else:
            answer = {"event": ERROR_EVENT, "call": number, "error": unmarshal(payload)}
        return (orjson.dumps(answer),)

    def _request(self, obj: dict[str, Any], payload: Any) -> Decoded:
        envelope_id = obj.get("id")
        if not _valid_id(envelope_id):
            return (_bad(f"a request needs an 'id': a string of 1 to {MAX_ID} characters"),)
        native_id = "r:" + envelope_id
        event = payload.get("event") if isinstance(payload, dict) else None
        if not isinstance(event, str) or not event:
            return (_bad("a request's payload must be {'event': <str>, 'data': ...}", native_id),)
        return (_request(event, native_id, payload.get("data")),)

    def _response(self, obj: dict[str, Any], payload: Any) -> Decoded:
        return (Invalid(ErrorCode.NOT_FOUND, "this server sends no requests to answer"),)

    def _event(self, obj: dict[str, Any], payload: Any) -> Decoded:
        event = obj.get("event")
        if not isinstance(event, str) or not event:
            return (_bad("an event needs an 'event': a non-empty string"),)
        return (orjson.dumps({"event": event, "data": payload}),)

    def _message(self, obj: dict[str, Any], payload: Any) -> Decoded:
        if obj.get("id") is not None and not isinstance(obj.get("id"), str):
            return (_bad("a message's 'id' must be a string"),)
        self._next += 1
        return (_request(QUEUE_EVENT, f"m:{self._next}", payload),)

    def _auth(self, obj: dict[str, Any], payload: Any) -> Decoded:
        self._next += 1
        native_id = f"a:{self._next}"
        stage = obj.get("stage")
        if not isinstance(stage, str) or not stage:
            return (_bad("an auth frame needs a 'stage': a non-empty string", native_id),)
        data = {**payload, "stage": stage} if isinstance(payload, dict) else {"stage": stage}
        if not isinstance(payload, dict):
            data["payload"] = payload
        return (_request("ws:auth", native_id, data),)

    def _ping(self, obj: dict[str, Any], payload: Any) -> Decoded:
        # a native ws:ping, so heartbeats count against the rate limit as native ones do
        self._next += 1
        return (_request("ws:ping", f"p:{self._next}", None),)

    # --- out --------------------------------------------------------------------

    def encode(self, frame: bytes) -> bytes:
        obj = _native(frame)
        if obj is None:
            return b""
        event: str = obj["event"]
        if "call" in obj:
            if event == ERROR_EVENT:  # never sent to a client; nothing to carry it in
                return b""
            return _text(
                {
                    "type": "call",
                    "id": call_id(obj["call"]),
                    "method": event,
                    "payload": [obj.get("data")],
                    "timeout": 0,
                }
            )
        native_id = obj.get("id")
        if isinstance(native_id, str) and native_id[1:2] == ":":
            return self._answering(native_id[0], native_id[2:], event, obj)
        if event == ERROR_EVENT:
            error = obj.get("error") or {}
            return _system("error", marshal(error.get("code"), error.get("message") or ""))
        if event == WELCOME_EVENT:
            return _system("welcome", obj.get("data"))
        if event == QUEUE_EVENT and "seq" in obj:
            return _text({"type": "message", "id": str(obj["seq"]), "payload": obj.get("data")})
        return _event(obj)

    def _answering(self, kind: str, envelope_id: str, event: str, obj: dict[str, Any]) -> bytes:
        """An answer to what the client sent: a call, a request, an auth stage or a message."""
        error = obj.get("error") if event == ERROR_EVENT else None
        failed = None
        if error is not None:
            failed = marshal(error.get("code"), error.get("message") or "")
        if kind == "c":
            return self._result(envelope_id, obj, failed)
        if kind == "r":
            if failed is not None:
                body = {"payload": failed, "error": True, "end": True}
            elif obj.get("more") is True:
                body = {"payload": obj.get("data")}
            else:
                body = {"payload": obj.get("data"), "end": True}
            return _text({"type": "response", "id": envelope_id, **body})
        if kind == "a":
            if failed is not None:
                return _text({"type": "auth", "stage": None, "payload": failed})
            reply = obj.get("data") or {}
            return _text(
                {"type": "auth", "stage": reply.get("stage"), "payload": reply.get("data")}
            )
        if kind == "p" and failed is None:
            return _PONG
        if kind in "mp" and failed is not None:
            return _system("error", failed)
        return b""  # a message's seq: the format's enqueue is not answered

    def _result(self, envelope_id: str, obj: dict[str, Any], failed: str | None) -> bytes:
        """The one answer to a call: dropped after its deadline, when answered already (a
        generator's later chunks) or forgotten."""
        if envelope_id not in self._calls:
            return b""
        deadline = self._calls.pop(envelope_id)
        if deadline is not None and self._codec.clock() > deadline:
            return b""  # the caller has given up: its callee's timer drops late results too
        if failed is not None:
            return _text({"type": "error", "id": envelope_id, "payload": failed})
        return _text({"type": "result", "id": envelope_id, "payload": obj.get("data")})


_TAKE: Final[dict[str, Callable[[Session, dict[str, Any], Any], Decoded]]] = {
    "call": Session._call,
    "result": Session._answer,
    "error": Session._answer,
    "request": Session._request,
    "response": Session._response,
    "event": Session._event,
    "message": Session._message,
    "auth": Session._auth,
    "ping": Session._ping,
}


def _valid_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and 1 <= len(value) <= MAX_ID


def _arguments(payload: Any) -> Any:
    """A call's argument list as our data: one argument is the data, none null, more the list."""
    if not isinstance(payload, list):
        return payload
    if len(payload) <= 1:
        return payload[0] if payload else None
    return payload


def _request(event: str, native_id: str, data: Any) -> bytes:
    return orjson.dumps({"event": event, "id": native_id, "data": data})


def _system(event: str, payload: Any) -> bytes:
    return _text({"type": "system", "event": event, "payload": payload})


def _bad(message: str, native_id: str | None = None) -> Invalid:
    return Invalid(ErrorCode.BAD_FRAME, message, native_id)
