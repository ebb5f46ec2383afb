"""The exception tree of monument_ws.

Every error carries the protocol ``code`` of the error frame it becomes, so one
table maps exceptions to error frames and back::

    MonumentWSError                 internal
    ├── BadFrame                    bad_frame   (also bad_json, missing_event)
    ├── DuplicateId                 duplicate_id
    ├── NotFound                    not_found
    ├── Unauthorized                unauthorized
    │   └── AuthFailed              unauthorized (a client's auth() stage was refused)
    ├── Forbidden                   forbidden
    ├── TooLarge                    too_large
    ├── RateLimited                 rate_limited
    │   └── QueueFull               rate_limited (the client's outbox is full)
    ├── Timeout                     timeout      (also a builtin TimeoutError)
    ├── Unavailable                 unavailable
    │   └── ConnectionLost          unavailable  (the socket closed first)
    ├── Cancelled                   cancelled
    └── InternalError               internal
    ConfigError                     (not a protocol error: bad configuration)
    └── MissingExtra                (a setting needs an optional dependency not installed)

A handler may raise any of these to answer a request with that code; its
message reaches the client. Any other exception becomes ``internal`` with a
generic message, and the traceback goes only to the server log.
"""

from __future__ import annotations

from typing import Any

from .frames import ErrorCode


class MonumentWSError(Exception):
    """Root of every monument_ws error. ``code`` is the protocol error code."""

    #: The class's code; an error rebuilt from a frame carries the frame's own code
    #: (a BadFrame may be ``bad_json`` or ``missing_event``).
    code: ErrorCode = ErrorCode.INTERNAL
    #: True when the error came from the other side in an error frame.
    remote: bool = False

    def __init__(self, message: str = "", *, data: Any = None) -> None:
        super().__init__(message or self.code.value.replace("_", " "))
        self.data = data

    @property
    def message(self) -> str:
        return str(self.args[0])


class BadFrame(MonumentWSError):
    code = ErrorCode.BAD_FRAME


class DuplicateId(MonumentWSError):
    code = ErrorCode.DUPLICATE_ID


class NotFound(MonumentWSError):
    code = ErrorCode.NOT_FOUND


class Unauthorized(MonumentWSError):
    code = ErrorCode.UNAUTHORIZED


class AuthFailed(Unauthorized):
    """The server refused a stage of staged auth (``ws:auth``): what the clients'
    ``auth(stage, payload)`` raises for an ``unauthorized`` answer. ``stage`` is the stage
    that was tried; the client's stage did not change."""

    def __init__(self, message: str = "", *, stage: str = "", data: Any = None) -> None:
        super().__init__(message, data=data)
        self.stage = stage


class Forbidden(MonumentWSError):
    code = ErrorCode.FORBIDDEN


class TooLarge(MonumentWSError):
    code = ErrorCode.TOO_LARGE


class RateLimited(MonumentWSError):
    code = ErrorCode.RATE_LIMITED


class QueueFull(RateLimited):
    """The client's outbox is full; nothing already in it was dropped.

    The name predates the outbox's; the wire code is ``rate_limited``."""


class Timeout(MonumentWSError, TimeoutError):
    code = ErrorCode.TIMEOUT


class Unavailable(MonumentWSError):
    code = ErrorCode.UNAVAILABLE


class ConnectionLost(Unavailable):
    """The socket closed before the answer came."""


class Cancelled(MonumentWSError):
    code = ErrorCode.CANCELLED


class InternalError(MonumentWSError):
    code = ErrorCode.INTERNAL


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key and the remedy."""


class MissingExtra(ConfigError, RuntimeError):
    """A setting needs an optional dependency that is not installed (``reload``: watchfiles,
    ``metrics``: prometheus-client, a ``redis://`` broker: redis).

    The message is one line ending in the ``pip install 'monument-ws[EXTRA]'`` that brings
    it; ``monument-ws run`` prints just that line. Also a RuntimeError, which these
    failures were before.
    """

    def __init__(self, feature: str, package: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs {package}, which is not installed: pip install 'monument-ws[{extra}]'"
        )
        self.extra = extra


_BY_CODE: dict[str, type[MonumentWSError]] = {
    ErrorCode.BAD_JSON: BadFrame,
    ErrorCode.BAD_FRAME: BadFrame,
    ErrorCode.MISSING_EVENT: BadFrame,
    ErrorCode.DUPLICATE_ID: DuplicateId,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.UNAUTHORIZED: Unauthorized,
    ErrorCode.FORBIDDEN: Forbidden,
    ErrorCode.TOO_LARGE: TooLarge,
    ErrorCode.RATE_LIMITED: RateLimited,
    ErrorCode.TIMEOUT: Timeout,
    ErrorCode.UNAVAILABLE: Unavailable,
    ErrorCode.CANCELLED: Cancelled,
    ErrorCode.INTERNAL: InternalError,
}


def from_error_frame(error: Any) -> MonumentWSError:
    """Rebuild the typed exception from an error frame's ``error`` object.

    Unknown or malformed codes become :class:`InternalError`, so a client never
    fails while reading a server's error.
    """
    if not isinstance(error, dict):
        return InternalError("malformed error frame")
    code = error.get("code")
    message = error.get("message")
    if not isinstance(code, str) or code not in _BY_CODE:
        return InternalError(message if isinstance(message, str) else "")
    typed = _BY_CODE[code](message if isinstance(message, str) else "")
    typed.code = ErrorCode(code)  # the server's own code: a BadFrame may be bad_json
    return typed
