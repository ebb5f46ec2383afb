"""Publishing from outside a server (documented path; lives in :mod:`monument_ws.server.publisher`)."""

from .server.publisher import (
    Publisher,
)

__all__ = [
    "Publisher",
]
