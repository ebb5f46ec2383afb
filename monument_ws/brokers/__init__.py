"""Brokers join server processes: publish/subscribe, history, presence, client registry.

``memory://`` (the default) serves one process; ``redis://`` joins many. Pick
one with :func:`monument_ws.brokers.from_url` or pass an instance.
"""

from __future__ import annotations

from .base import Broker, History, Publication
from .memory import MemoryBroker


def from_url(url: str, *, prefix: str = "monument_ws") -> Broker:
    """The broker a URL names: ``memory://``, or ``redis://`` / ``rediss://`` / ``unix://``.

    Redis URLs carry the password and database as redis-py reads them
    (``redis://:secret@host:6379/2``, ``rediss://`` for TLS); ``prefix``
    namespaces the keys so several apps share one Redis.
    """
    if url == "memory" or url.startswith("memory://"):
        return MemoryBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        try:
            from .redis import RedisBroker
        except ImportError:
            raise RuntimeError(
                "the Redis broker needs the redis extra: pip install 'monument-ws[redis]'"
            ) from None
        return RedisBroker(url, prefix=prefix)
    raise ValueError(f"unknown broker URL {url!r}: use memory:// or redis://host:6379/0")


__all__ = ["Broker", "History", "MemoryBroker", "Publication", "from_url"]
