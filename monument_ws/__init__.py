"""monument_ws: real-time WebSockets for aiohttp, bridged to the application's event bus."""

from . import signals
from ._version import __version__
from .bus import DataRequest, EventBus, events
from .config import Config
from .connection import Socket
from .errors import (
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
from .plugin import MONUMENT_WS, MonumentWS, setup
from .protocol import CloseCode, ErrorCode, Frame

__all__ = [
    "MONUMENT_WS",
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
