"""Structured logs (documented path; lives in :mod:`monument_ws.server.logs`)."""

from .server.logs import (
    TEXT_FORMAT,
    JsonFormatter,
    SocketFilter,
    bind,
    configure,
    current_socket,
)

__all__ = [
    "TEXT_FORMAT",
    "JsonFormatter",
    "SocketFilter",
    "bind",
    "configure",
    "current_socket",
]
