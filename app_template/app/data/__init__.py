"""Data providers. Each module answers ``data:get:<name>`` on the bus, which serves
``GET /api/<name>`` and the socket event alike. ``monument-ws data NAME`` adds one."""

from . import greeting

__all__ = ["greeting"]
