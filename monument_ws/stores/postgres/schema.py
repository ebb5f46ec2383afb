"""The store's tables, and bringing them up to date.

Every table lives in one PostgreSQL schema (the ``store_schema`` setting), so several apps, or
several test runs, share a database without meeting. ``schema_version`` lists the migrations
applied; :func:`migrate` applies the missing ones in order, each in its own transaction, under
a session advisory lock taken on the schema's name: processes that start together wait for the
first, then find nothing left to do. Running it again changes nothing.

Tables (migration 1):

* ``channels`` -- one row per persisted channel: its ``epoch`` (made once, kept for as long as
  the row) and ``top``, the newest offset given out. Retention never deletes these rows, so a
  position a client holds keeps its meaning.
* ``publications`` -- ``(channel, offset)`` with the ``epoch``, ``event`` and ``data`` (both
  ``json``, the text as published: an event name is a JSON string, so a NUL in it is stored
  escaped), the excluded client id if any and ``published_at``.

Migration 2 adds ``publications.idempotency_key``: the key a publish carried, looked up (under
the channel's lock) before a publish with the same key is written again.

A new migration is appended to :data:`MIGRATIONS`; an applied one is never edited.
"""

from __future__ import annotations

import re
from typing import Final

import asyncpg

#: The SQL of each version, in order; ``{s}`` is the quoted schema name.
MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE {s}.channels (
        channel text PRIMARY KEY,
        epoch text NOT NULL,
        top bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE {s}.publications (
        channel text NOT NULL,
        "offset" bigint NOT NULL,
        epoch text NOT NULL,
        event json NOT NULL,
        data json NOT NULL,
        exclude text,
        published_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (channel, "offset")
    );
    CREATE INDEX publications_published_at ON {s}.publications (channel, published_at);
    """,
    """
    ALTER TABLE {s}.publications ADD COLUMN idempotency_key text;
    CREATE INDEX publications_idempotency_key ON {s}.publications (channel, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    """,
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def quoted(schema: str) -> str:
    """``schema`` as an SQL identifier; ValueError unless it is a plain name of 1..63 letters,
    digits and underscores (not starting with a digit)."""
    if _NAME.fullmatch(schema) is None:
        raise ValueError(
            f"store_schema must be 1..63 letters, digits or _ not starting with a digit, "
            f"got {schema!r}"
        )
    return f'"{schema}"'


async def migrate(
    connection: asyncpg.Connection[asyncpg.Record]
    | asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
    schema: str,
) -> int:
    """Bring ``schema`` up to the newest version; returns the version it is at."""
    s = quoted(schema)
    lock = f"monument_ws.migrate:{schema}"
    await connection.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", lock)
    try:
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {s}.schema_version ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await connection.fetchval(
            f"SELECT coalesce(max(version), 0) FROM {s}.schema_version"
        )
        for version, sql in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            async with connection.transaction():
                await connection.execute(sql.format(s=s))
                await connection.execute(
                    f"INSERT INTO {s}.schema_version (version) VALUES ($1)", version
                )
        return len(MIGRATIONS)
    finally:
        await connection.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", lock)
