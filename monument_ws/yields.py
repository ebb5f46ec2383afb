"""Typed values a handler yields (documented path; lives in :mod:`monument_ws.protocol.yields`)."""

from .protocol.yields import (
    Yield,
    YieldType,
    broadcast,
    custom,
    error,
    message,
    not_found,
    sync,
)

__all__ = [
    "Yield",
    "YieldType",
    "broadcast",
    "custom",
    "error",
    "message",
    "not_found",
    "sync",
]
