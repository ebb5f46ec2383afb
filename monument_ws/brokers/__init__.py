"""Brokers join server processes: publish/subscribe, history, presence, client registry.

``memory://`` (the default) serves one process; ``redis://`` joins many. Pick
one with :func:`monument_ws.brokers.from_url` or pass an instance.
"""

from __future__ import annotations

import importlib

from ..protocol.errors import MissingExtra
from .base import Broker, History, Idempotency, Publication
from .memory import MemoryBroker

#: The URL schemes of the Redis broker (which needs the redis extra).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def check_url(url: str) -> None:
    """Raise what :func:`from_url` would for ``url``, without building a broker: ValueError
    for an unknown scheme, MissingExtra for a Redis URL without the redis extra."""
    if url == "memory" or url.startswith("memory://"):
        return
    if url.startswith(REDIS_SCHEMES):
        try:
            importlib.import_module("redis")
        except ImportError:
            raise MissingExtra(f"the broker {url.split(':', 1)[0]}://", "redis", "redis") from None
        return
    raise ValueError(f"unknown broker URL {url!r}: use memory:// or redis://host:6379/0")


def from_url(url: str, *, prefix: str = "monument_ws") -> Broker:
    """The broker a URL names: ``memory://``, or ``redis://`` / ``rediss://`` / ``unix://``.

    Redis URLs carry the password and database as redis-py reads them
    (``redis://:secret@host:6379/2``, ``rediss://`` for TLS); ``prefix``
    namespaces the keys so several apps share one Redis.
    """
    check_url(url)
    if url.startswith(REDIS_SCHEMES):
        from .redis import RedisBroker

        return RedisBroker(url, prefix=prefix)
    return MemoryBroker()


__all__ = [
    "Broker",
    "History",
    "Idempotency",
    "MemoryBroker",
    "Publication",
    "check_url",
    "from_url",
]
