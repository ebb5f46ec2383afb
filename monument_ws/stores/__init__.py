"""Stores keep channels' publications beyond the broker's history window.

A channel whose namespace says ``persist: true`` writes every publication to the store named by
the ``store`` setting before it is announced; the store numbers it (epoch and offset), answers
recoveries from any position it still keeps, and enforces the namespace's retention. Only
``postgresql://`` exists (the ``postgres`` extra, asyncpg); see
:mod:`monument_ws.stores.postgres`.
"""

from __future__ import annotations

import importlib

from ..protocol.errors import MissingExtra
from .base import Retention, Store

#: The URL schemes of the PostgreSQL store (which needs the postgres extra).
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def check_url(url: str) -> None:
    """Raise what :func:`from_url` would for ``url`` without building a store: ValueError for
    an unknown scheme, MissingExtra when asyncpg is not installed. "" (no store) passes."""
    if not url:
        return
    if url.startswith(POSTGRES_SCHEMES):
        try:
            importlib.import_module("asyncpg")
        except ImportError:
            raise MissingExtra("the store postgresql://", "asyncpg", "postgres") from None
        return
    raise ValueError(f"unknown store URL {url!r}: use postgresql://user@host:5432/db")


def from_url(
    url: str,
    *,
    schema: str = "monument_ws",
    queue_size: int = 10_000,
    timeout: float = 5.0,
) -> Store | None:
    """The store ``url`` names, or None for "". ``schema`` holds its tables; ``queue_size``
    bounds the publications waiting to be written; ``timeout`` bounds each database call."""
    check_url(url)
    if not url:
        return None
    from .postgres import PostgresStore

    return PostgresStore(url, schema=schema, queue_size=queue_size, timeout=timeout)


__all__ = ["POSTGRES_SCHEMES", "Retention", "Store", "check_url", "from_url"]
