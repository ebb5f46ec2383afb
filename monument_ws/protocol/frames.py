"""Wire protocol version 1: frames, error codes, close codes (Sans-I/O).

This module is the contract between the server, the Python client and the
browser client. It imports neither aiohttp nor redis: it turns text into
:class:`Frame` objects (or an :class:`Invalid` verdict) and Python values into
the bytes of a text frame. ``tests/vectors/frames.json`` holds the shared test
vectors every implementation is checked against.

Every frame is one JSON object in a WebSocket text frame::

    {"event": "data:get:item", "id": 7, "data": {...}}

* ``event`` -- required string, 1..256 characters; it routes the message.
* ``id`` -- optional integer (0..2**53-1) or string (1..64 characters). With an
  id the server answers exactly once; without one nothing is answered except
  errors about the frame itself.
* ``data`` -- optional payload. Other top-level keys are kept in
  :attr:`Frame.raw` and reach the application untouched.

:func:`decode` never raises on client input: it returns :class:`Invalid` with
the error code to send back and, when the frame carried a valid one, its id.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

PROTOCOL_VERSION: Final = 1
SUBPROTOCOL: Final = "monument.v1"

MAX_EVENT_LENGTH: Final = 256
MAX_STRING_ID_LENGTH: Final = 64
MAX_INT_ID: Final = 2**53 - 1

#: The prefix of protocol commands; an application event may not start with it.
COMMAND_PREFIX: Final = "ws:"

#: Error frames use this event so they never collide with an application event.
ERROR_EVENT: Final = "ws:error"
RESULT_EVENT: Final = "ws:result"
WELCOME_EVENT: Final = "ws:welcome"

#: A queued message (peer queue): the push server → client and the command client → server.
QUEUE_EVENT: Final = "ws:enqueue"
#: The upgrade URL's query parameter with the highest queued ``seq`` a reconnecting client has.
QUEUED_PARAM: Final = "queued"

#: Top-level keys protocol version 1 gives a meaning in some frame (client → server or server
#: → client). A client's extra keys (``extra=`` of a call or a tell) may use any other name.
RESERVED_KEYS: Final = frozenset(
    {"event", "id", "data", "call", "error", "channel", "offset", "more", "end", "sync", "seq"}
)

RequestId = int | str


class ErrorCode(enum.StrEnum):
    """The ``code`` of an error frame."""

    BAD_JSON = "bad_json"
    BAD_FRAME = "bad_frame"
    MISSING_EVENT = "missing_event"
    DUPLICATE_ID = "duplicate_id"
    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    CANCELLED = "cancelled"
    INTERNAL = "internal"


#: Codes that describe the frame itself: they are sent even without an ``id``
#: and count towards the bad-frame limit.
FRAME_ERRORS: Final = frozenset({ErrorCode.BAD_JSON, ErrorCode.BAD_FRAME, ErrorCode.MISSING_EVENT})


class Reconnect(enum.Enum):
    """What a client does after the server closed with a given code."""

    NEVER = "no"
    JITTER = "yes, with jitter"
    BACKOFF = "yes, with backoff and jitter"
    DROP_MESSAGE = "yes, but the message that was too big is not sent again"
    RECOVER = "yes, and recover from history"
    LONG_DELAY = "yes, after a longer delay"


class CloseCode(enum.IntEnum):
    """WebSocket close codes used by monument_ws, with their reconnect policy."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    ABNORMAL = 1006
    INVALID_DATA = 1007
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    SLOW_CONSUMER = 4008
    RATE_LIMITED = 4029
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    KICKED = 4409

    @property
    def reconnect(self) -> Reconnect:
        return _RECONNECT[self]

    @property
    def meaning(self) -> str:
        return _MEANING[self]


_RECONNECT: Final = {
    CloseCode.NORMAL: Reconnect.NEVER,
    CloseCode.GOING_AWAY: Reconnect.JITTER,
    CloseCode.PROTOCOL_ERROR: Reconnect.NEVER,
    CloseCode.UNSUPPORTED_DATA: Reconnect.NEVER,
    CloseCode.ABNORMAL: Reconnect.BACKOFF,
    CloseCode.INVALID_DATA: Reconnect.NEVER,
    CloseCode.POLICY: Reconnect.NEVER,
    CloseCode.TOO_BIG: Reconnect.DROP_MESSAGE,
    CloseCode.INTERNAL: Reconnect.BACKOFF,
    CloseCode.SLOW_CONSUMER: Reconnect.RECOVER,
    CloseCode.RATE_LIMITED: Reconnect.LONG_DELAY,
    CloseCode.UNAUTHORIZED: Reconnect.NEVER,
    CloseCode.FORBIDDEN: Reconnect.NEVER,
    CloseCode.KICKED: Reconnect.NEVER,
}

_MEANING: Final = {
    CloseCode.NORMAL: "normal",
    CloseCode.GOING_AWAY: "server shutting down / draining",
    CloseCode.PROTOCOL_ERROR: "the client offered no protocol version this server speaks",
    CloseCode.UNSUPPORTED_DATA: "a frame type the endpoint's wire format does not take",
    CloseCode.ABNORMAL: "connection lost",
    CloseCode.INVALID_DATA: "a text frame that is not UTF-8",
    CloseCode.POLICY: "policy: too many bad frames, auth time-out",
    CloseCode.TOO_BIG: "message too big",
    CloseCode.INTERNAL: "internal error",
    CloseCode.SLOW_CONSUMER: "slow consumer: its send buffer overflowed",
    CloseCode.RATE_LIMITED: "rate limited",
    CloseCode.UNAUTHORIZED: "unauthorized",
    CloseCode.FORBIDDEN: "forbidden",
    CloseCode.KICKED: "kicked by the server",
}


@dataclass(frozen=True, slots=True)
class Command:
    """A ``ws:`` protocol command, whether the client must give it an ``id``, and whether a
    server that requires authentication takes it before the client authenticated."""

    name: str
    requires_id: bool
    before_auth: bool = False


#: Every command of protocol version 1.
COMMANDS: Final = {
    c.name: c
    for c in (
        Command("ws:subscribe", True),
        Command("ws:unsubscribe", True),
        Command("ws:publish", True),
        Command("ws:presence", True),
        Command("ws:history", True),
        Command("ws:heartbeat", False, before_auth=True),
        Command("ws:auth", True, before_auth=True),
        Command("ws:ping", True, before_auth=True),
        Command("ws:cancel", False),
        Command("ws:enqueue", True),
        Command("ws:unwatch", False),
        Command("ws:result", False),
        Command("ws:error", False),
    )
}


@dataclass(frozen=True, slots=True)
class Frame:
    """A valid client frame. ``raw`` is the whole decoded object."""

    event: str
    id: RequestId | None
    data: Any
    raw: dict[str, Any]

    @property
    def has_data(self) -> bool:
        return "data" in self.raw

    @property
    def is_command(self) -> bool:
        return self.event.startswith(COMMAND_PREFIX)


@dataclass(frozen=True, slots=True)
class Queued:
    """A message taken from a peer queue: its data and its sequence number in the queue."""

    data: Any
    seq: int


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a frame was refused: the error to send back (with the frame's id if it had a valid
    one), or, when ``close`` is set, the close code that ends the connection instead."""

    code: ErrorCode
    message: str
    id: RequestId | None = None
    close: CloseCode | None = None


def check_id(value: object) -> str | None:
    """Return why ``value`` is not a valid request id, or None when it is one."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return "'id' must be an integer or a string"
    if isinstance(value, int):
        if not 0 <= value <= MAX_INT_ID:
            return f"an integer 'id' must be between 0 and {MAX_INT_ID}"
    elif not 1 <= len(value) <= MAX_STRING_ID_LENGTH:
        return f"a string 'id' must have 1 to {MAX_STRING_ID_LENGTH} characters"
    return None


def decode(text: str | bytes) -> Frame | Invalid:
    """Parse and validate one client text frame. Never raises on bad input.

    Bytes that are not UTF-8 are refused with ``close`` 1007 (RFC 6455 says
    a text frame must be UTF-8); an integer outside the signed 64-bit range
    anywhere in the frame is a ``bad_frame`` (a JSON parser would otherwise
    turn it silently into a float or an integer other peers cannot hold).
    """
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        if isinstance(text, bytes) and not _is_utf8(text):
            return Invalid(
                ErrorCode.BAD_JSON, "the frame is not UTF-8", close=CloseCode.INVALID_DATA
            )
        return Invalid(ErrorCode.BAD_JSON, "the frame is not valid JSON")
    verdict = validate(obj)
    if type(verdict) is not Frame:
        return verdict
    data = verdict.data
    if len(obj) == 1 + (verdict.id is not None) + ("data" in obj):
        # Only event, id (checked already) and data: data alone can hold a number.
        kind = type(data)
        if data is None or kind is str or kind is bool:
            return verdict
        if kind is int:
            return verdict if _INT64_MIN <= data <= _INT64_MAX else _big_int(verdict)
    # Anything else: most frames hold fewer than 19 digits in all, which one C-speed pass
    # tells; only the others are parsed again to look at each integer literal.
    raw = text if isinstance(text, bytes) else text.encode()
    if len(raw) - len(raw.translate(None, _DIGITS)) >= 19 and _has_big_int(raw):
        return _big_int(verdict)
    return verdict


def _big_int(frame: Frame) -> Invalid:
    return Invalid(ErrorCode.BAD_FRAME, "integers must be within the signed 64-bit range", frame.id)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


_DIGITS: Final = b"0123456789"
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
#: 19 digits in a row: the shortest literal that can leave the signed 64-bit range.
_LONG_NUMBER: Final = re.compile(rb"[0-9]{19}")


class _OutOfRange(Exception):
    pass


def _int64(literal: str) -> int:
    value = int(literal)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise _OutOfRange
    return value


def _has_big_int(raw: bytes) -> bool:
    """Whether the (valid JSON) ``raw`` holds an integer outside the signed 64-bit range.

    Only a frame with a run of 19 digits can; it is parsed again, by a parser
    that shows each integer literal (digits inside strings are no integers).
    """
    if not _LONG_NUMBER.search(raw):
        return False
    try:
        json.loads(raw, parse_int=_int64)
    except _OutOfRange:
        return True
    return False


def validate(obj: object) -> Frame | Invalid:
    """Check an already parsed client frame (e.g. one a middleware rewrote). Never raises."""
    if type(obj) is not dict and not isinstance(obj, dict):
        return Invalid(ErrorCode.BAD_FRAME, "a frame must be a JSON object")
    request_id = obj.get("id")
    # type() first: the common id (a small int) is checked without the general function.
    if request_id is not None and not (type(request_id) is int and 0 <= request_id <= MAX_INT_ID):
        problem = check_id(request_id)
        if problem is not None:
            return Invalid(ErrorCode.BAD_FRAME, problem)
    elif request_id is None and "id" in obj:
        return Invalid(ErrorCode.BAD_FRAME, check_id(None) or "")
    event = obj.get("event")
    if event is None:
        return Invalid(ErrorCode.MISSING_EVENT, "the frame has no 'event'", request_id)
    if type(event) is not str and not isinstance(event, str):
        return Invalid(ErrorCode.BAD_FRAME, "'event' must be a string", request_id)
    if not 1 <= len(event) <= MAX_EVENT_LENGTH:
        return Invalid(
            ErrorCode.BAD_FRAME,
            f"'event' must have 1 to {MAX_EVENT_LENGTH} characters",
            request_id,
        )
    if event.startswith(COMMAND_PREFIX):
        command = COMMANDS.get(event)
        if command is None:
            return Invalid(ErrorCode.NOT_FOUND, f"unknown command {event!r}", request_id)
        if command.requires_id and request_id is None:
            return Invalid(ErrorCode.BAD_FRAME, f"the command {event!r} requires an 'id'")
    return Frame(event, request_id, obj.get("data"), obj)


# --- encoding ---------------------------------------------------------------
#
# Encoders return bytes (UTF-8 JSON) so the same buffer can be written to many
# sockets as a text frame without re-encoding.


def encode(obj: dict[str, Any]) -> bytes:
    """Encode any frame. Raises TypeError for values JSON cannot hold.

    NaN and ±Infinity are written as ``null``, as JavaScript's ``JSON.stringify`` does.
    """
    return orjson.dumps(obj)


def check_extra(extra: object) -> str | None:
    """Why ``extra`` cannot be added to a client frame as top-level keys, or None when it can:
    it must be a dict of string keys, none of them in :data:`RESERVED_KEYS`."""
    if not isinstance(extra, dict):
        return f"extra keys must be a dict, not {type(extra).__name__}"
    for key in extra:
        if not isinstance(key, str):
            return f"extra keys must be strings, not {key!r}"
        if key in RESERVED_KEYS:
            return f"{key!r} is a key the protocol reserves; extra keys may not use it"
    return None


def reply(event: str, request_id: RequestId | None, data: Any) -> bytes:
    """A final reply (``id`` omitted when None)."""
    if request_id is None:
        return orjson.dumps({"event": event, "data": data})
    return orjson.dumps({"event": event, "id": request_id, "data": data})


def chunk(event: str, request_id: RequestId, data: Any) -> bytes:
    """One chunk of a streamed reply."""
    return orjson.dumps({"event": event, "id": request_id, "data": data, "more": True})


def end(event: str, request_id: RequestId) -> bytes:
    """The end of a streamed reply."""
    return orjson.dumps({"event": event, "id": request_id, "end": True})


def push(event: str, data: Any, **extra: Any) -> bytes:
    """A push that answers nothing; ``extra`` adds keys such as ``channel`` and ``offset``."""
    return orjson.dumps({"event": event, "data": data, **extra})


def error(
    code: ErrorCode | str,
    message: str,
    request_id: RequestId | None = None,
    *,
    call: int | None = None,
) -> bytes:
    """An error frame, answering a request (``id``) or a server call (``call``)."""
    frame: dict[str, Any] = {"event": ERROR_EVENT}
    if request_id is not None:
        frame["id"] = request_id
    if call is not None:
        frame["call"] = call
    frame["error"] = {"code": str(code), "message": message}
    return orjson.dumps(frame)


class Kind(enum.StrEnum):
    """What a server frame is to a client; :func:`parse_server` decides it."""

    WELCOME = "welcome"  # ws:welcome: client_id, resume secret, heartbeat
    REPLY = "reply"  # the final answer to request ``id``
    CHUNK = "chunk"  # one chunk of a streamed reply (``more: true``)
    END = "end"  # the end of a streamed reply (``end: true``, no data)
    ERROR = "error"  # ws:error, answering ``id`` or (without one) about a frame
    CALL = "call"  # the server calls the client: answer ``call`` with ws:result / ws:error
    PUBLICATION = "publication"  # a channel push with ``channel`` and ``offset``
    PUSH = "push"  # anything else with an event: a push answering nothing


@dataclass(frozen=True, slots=True)
class ServerFrame:
    """A frame from the server as a client sees it. ``raw`` is the whole decoded object."""

    kind: Kind
    event: str
    raw: dict[str, Any]

    @property
    def id(self) -> RequestId | None:
        """The request this frame answers (replies, chunks, ends, errors, SYNC replies)."""
        value = self.raw.get("id")
        return value if check_id(value) is None else None

    @property
    def data(self) -> Any:
        return self.raw.get("data")

    @property
    def sync(self) -> str | None:
        """``"full"`` or ``"patch"`` for a SYNC frame (push or reply): apply it to the kept object."""
        mode = self.raw.get("sync")
        return mode if mode in ("full", "patch") else None


def parse_server(text: str | bytes) -> ServerFrame | None:
    """Classify one server frame for a client; None for text a client must ignore.

    The rules, in order (the shared test vectors check every client against them):
    not a JSON object with a string ``event`` → ignored; ``ws:welcome`` →
    WELCOME; ``ws:error`` → ERROR; a ``call`` key → CALL; ``channel`` and an
    integer ``offset`` → PUBLICATION; a valid ``id`` with ``more: true`` →
    CHUNK, with ``end: true`` → END, otherwise → REPLY; else PUSH. Whether
    the data is a SYNC object or patch is orthogonal (:attr:`ServerFrame.sync`),
    as is a plug's ``"type": "custom_<n>"``. Never raises.
    """
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return classify(obj)


def classify(obj: object) -> ServerFrame | None:
    """:func:`parse_server` for an already decoded frame (e.g. one a client hook rewrote)."""
    if not isinstance(obj, dict):
        return None
    event = obj.get("event")
    if not isinstance(event, str):
        return None
    kind: Kind
    if event == WELCOME_EVENT:
        kind = Kind.WELCOME
    elif event == ERROR_EVENT:
        kind = Kind.ERROR
    elif "call" in obj:
        kind = Kind.CALL
    elif "channel" in obj and _is_offset(obj.get("offset")):
        kind = Kind.PUBLICATION
    elif check_id(obj.get("id")) is None:
        if obj.get("more") is True:
            kind = Kind.CHUNK
        elif obj.get("end") is True:
            kind = Kind.END
        else:
            kind = Kind.REPLY
    else:
        kind = Kind.PUSH
    return ServerFrame(kind, event, obj)


def _is_offset(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def set_event_for(event: str) -> str | None:
    """The ``:set:`` event answering a data event, or None if ``event`` is not one.

    Only the first ``:get:`` is replaced (``a:get:b:get:c`` → ``a:set:b:get:c``),
    as monument did.
    """
    if ":get:" not in event:
        return None
    return event.replace(":get:", ":set:", 1)


def channel_push(channel: str, event: str, data: Any, offset: int) -> bytes:
    """A channel publication: encoded once, the same bytes go to every subscriber."""
    return orjson.dumps({"event": event, "channel": channel, "data": data, "offset": offset})


#: A close frame's reason holds at most 123 bytes.
MAX_REASON_BYTES: Final = 123


def truncate(reason: str) -> str:
    """``reason`` cut to fit a close frame (123 bytes of UTF-8), never inside a character."""
    data = reason.encode()
    if len(data) <= MAX_REASON_BYTES:
        return reason
    return data[:MAX_REASON_BYTES].decode(errors="ignore")


#: Channel names: 1..200 of these characters. A namespace is the part before
#: the first ``:`` (``chat:lobby`` is in namespace ``chat``).
#: A leading ``$`` marks the server's reserved channels (``$user:…``, ``$session:…``).
CHANNEL_NAME: Final = re.compile(r"\$?[A-Za-z0-9_\-.:@/=+#]{1,200}")


#: The longest idempotency key a publish may carry (``ws:publish``'s ``idempotency_key``).
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 64
_IDEMPOTENCY_KEY: Final = re.compile(rf"[^\x00-\x1f\x7f]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}")


def check_idempotency_key(key: object) -> str | None:
    """Return why ``key`` is not a valid idempotency key, or None when it is one: a string of
    1 to 64 characters without control characters (the client's choice, e.g. a UUID)."""
    if not isinstance(key, str) or _IDEMPOTENCY_KEY.fullmatch(key) is None:
        return (
            f"'idempotency_key' must be a string of 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} "
            "characters without control characters"
        )
    return None


def check_channel(name: object) -> str | None:
    """Return why ``name`` is not a valid channel name, or None when it is one."""
    if not isinstance(name, str) or CHANNEL_NAME.fullmatch(name) is None:
        return "a channel name has 1 to 200 characters of A-Z a-z 0-9 _ - . : @ / = + #"
    return None
