"""Brokers join server processes: publish/subscribe, history, presence, client registry.

``memory://`` (the default) serves one process; ``redis://`` joins many; several Redis
URLs separated by commas spread the channels over several Redis servers (shards, see
:mod:`monument_ws.brokers.redis.sharded`). Pick one with :func:`monument_ws.brokers.from_url`
or pass an instance.
"""

from __future__ import annotations

import importlib

from ..protocol.errors import MissingExtra
from .base import Broker, History, Idempotency, Publication
from .memory import MemoryBroker

#: The URL schemes of the Redis broker (which needs the redis extra).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def shard_urls(url: str) -> list[str]:
    """The URLs of a comma-separated list, each stripped: one for a single broker."""
    return [part.strip() for part in url.split(",")]


def check_url(url: str) -> None:
    """Raise what :func:`from_url` would for ``url``, without building a broker: ValueError
    for an unknown scheme or a bad list of shards, MissingExtra for a Redis URL without the
    redis extra."""
    parts = shard_urls(url)
    if len(parts) > 1:
        if not all(part.startswith(REDIS_SCHEMES) for part in parts):
            raise ValueError(
                f"bad broker URL list {url!r}: shards are Redis URLs separated by commas, "
                "e.g. redis://h1:6379/0,redis://h2:6379/0"
            )
        if len(set(parts)) != len(parts):
            raise ValueError(f"bad broker URL list {url!r}: a shard is listed twice")
        for part in parts:
            check_url(part)
        return
    url = parts[0]
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
    namespaces the keys so several apps share one Redis. Several Redis URLs separated by
    commas make a :class:`~monument_ws.brokers.redis.ShardedRedisBroker`.
    """
    check_url(url)
    parts = shard_urls(url)
    if len(parts) > 1:
        from .redis import ShardedRedisBroker

        return ShardedRedisBroker(parts, prefix=prefix)
    url = parts[0]
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
    "shard_urls",
]
