"""Presence (documented path; lives in :mod:`monument_ws.channels.presence`, its event
names in :mod:`monument_ws.signals`)."""

from .channels.presence import SMALL, Presence
from .signals import PRESENCE_CONNECTED as CONNECTED
from .signals import PRESENCE_DISCONNECTED as DISCONNECTED
from .signals import PRESENCE_RECONNECTED as RECONNECTED
from .signals import PRESENCE_REMOVED as REMOVED

__all__ = [
    "CONNECTED",
    "DISCONNECTED",
    "RECONNECTED",
    "REMOVED",
    "SMALL",
    "Presence",
]
