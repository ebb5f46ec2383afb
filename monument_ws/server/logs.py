"""Structured logs: every line about a socket carries its ``socket_id`` and ``client_id``.

Two sources fill those fields:

* the socket's own log lines (``monument_ws`` logger) pass them explicitly;
* everything logged while serving a socket -- the plugin, the application's
  handlers, any library they call -- gets them from a context variable that
  the plugin sets for the socket's task (tasks started from it inherit it).

:class:`SocketFilter` copies the context into each record (``-`` when a line
is about no socket); :class:`JsonFormatter` writes one JSON object per line.
``monument-ws run --log-format json`` installs both through :func:`configure`;
an application with its own logging setup adds the filter to its handlers::

    handler.addFilter(monument_ws.logs.SocketFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s [%(socket_id)s] %(message)s"))
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any, Literal

import orjson

#: ``(socket_id, client_id)`` of the socket whose task is running, if any.
current_socket: ContextVar[tuple[str, str] | None] = ContextVar("monument_ws_socket", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(socket_id)s %(client_id)s] %(message)s"


def bind(socket_id: str, client_id: str) -> None:
    """Mark the running task (and the tasks it starts) as serving this socket."""
    current_socket.set((socket_id, client_id))


class SocketFilter(logging.Filter):
    """Gives every record ``socket_id`` and ``client_id`` (``-`` outside a socket).

    Values passed explicitly (``extra=``) win over the context.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "socket_id"):
            bound = current_socket.get()
            record.socket_id, record.client_id = bound if bound is not None else ("-", "-")
        elif not hasattr(record, "client_id"):
            record.client_id = "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, socket_id, client_id
    (null outside a socket) and, for exceptions, the traceback as ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        socket_id = getattr(record, "socket_id", "-")
        client_id = getattr(record, "client_id", "-")
        line: dict[str, Any] = {
            "time": record.created,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "socket_id": None if socket_id == "-" else socket_id,
            "client_id": None if client_id == "-" else client_id,
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(fmt: Literal["text", "json"] = "text", level: int = logging.INFO) -> logging.Handler:
    """Log to stderr in ``fmt`` with socket ids on every line (what ``monument-ws run`` does).

    Replaces the root logger's handlers; returns the installed handler.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SocketFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
