"""Presence (documented path; lives in :mod:`monument_ws.channels.presence`)."""

from .channels.presence import (
    CONNECTED,
    DISCONNECTED,
    RECONNECTED,
    REMOVED,
    SMALL,
    Presence,
)

__all__ = [
    "CONNECTED",
    "DISCONNECTED",
    "RECONNECTED",
    "REMOVED",
    "SMALL",
    "Presence",
]
