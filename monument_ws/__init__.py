"""monument_ws: real-time WebSockets for aiohttp, bridged to the application's event bus."""

from . import signals
from ._version import __version__
from .bus import DataRequest, EventBus, events
from .config import Config
from .connection.dispatch import Handler
from .connection.socket import Socket
from .mount import MONUMENT_WS, setup
from .protocol.errors import (
    AuthFailed,
    Cancelled,
    ConnectionLost,
    DuplicateId,
    Forbidden,
    MonumentWSError,
    NotFound,
    RateLimited,
    Timeout,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from .protocol.frames import CloseCode, ErrorCode, Frame
from .server.plugin import MonumentWS

__all__ = [
    "MONUMENT_WS",
    "AuthFailed",
    "Cancelled",
    "CloseCode",
    "Config",
    "ConnectionLost",
    "DataRequest",
    "DuplicateId",
    "ErrorCode",
    "EventBus",
    "Forbidden",
    "Frame",
    "Handler",
    "MonumentWS",
    "MonumentWSError",
    "NotFound",
    "RateLimited",
    "Socket",
    "Timeout",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "__version__",
    "events",
    "setup",
    "signals",
]
