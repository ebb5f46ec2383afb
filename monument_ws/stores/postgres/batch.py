"""One batch of the store's writer, in SQL: idempotency keys looked up, offsets numbered, the
publications inserted -- and the frame a stored publication is carried in, live and replayed.

The caller (:meth:`PostgresStore._write <monument_ws.stores.postgres.store.PostgresStore>`)
holds every channel's advisory lock around :func:`commit` and its announcement; ``s`` is the
quoted schema name.
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
import orjson

from ...brokers.base import Publication
from .writer import Pending

#: A connection of the pool, as asyncpg hands it out (generic in its stubs only).
Connection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"


async def commit(
    connection: Connection, s: str, batch: list[Pending]
) -> tuple[list[tuple[Pending, Publication, str]], list[tuple[Pending, tuple[int, str]]]]:
    """Write ``batch`` (the channels' locks held): the publications written, and the
    publishes whose idempotency key was seen within its window -- in the store, or earlier
    in this batch -- with the first one's position (those are not written again)."""
    async with connection.transaction():
        known = await _keys_seen(connection, s, batch)
        fresh: list[Pending] = []
        repeats: list[tuple[Pending, Pending]] = []  # (repeat, the first of its key here)
        firsts: dict[tuple[str, str], Pending] = {}
        repeated: list[tuple[Pending, tuple[int, str]]] = []
        for pending in batch:
            key = None if pending.idempotency is None else pending.idempotency.key
            if key is None:
                fresh.append(pending)
            elif (pending.channel, key) in known:
                repeated.append((pending, known[pending.channel, key]))
            elif (pending.channel, key) in firsts:
                repeats.append((pending, firsts[pending.channel, key]))
            else:
                firsts[pending.channel, key] = pending
                fresh.append(pending)
        if not fresh:
            return [], repeated
        counts: dict[str, int] = {}
        for pending in fresh:
            counts[pending.channel] = counts.get(pending.channel, 0) + 1
        channels = sorted(counts)
        rows = await connection.fetch(
            f"INSERT INTO {s}.channels AS c (channel, epoch, top) "
            "SELECT t.channel, substr(md5(random()::text || clock_timestamp()::text), 1, 8), "
            "t.n FROM unnest($1::text[], $2::bigint[]) AS t(channel, n) "
            "ON CONFLICT (channel) DO UPDATE SET top = c.top + EXCLUDED.top "
            "RETURNING channel, epoch, top",
            channels,
            [counts[channel] for channel in channels],
        )
        next_offset = {r["channel"]: r["top"] - counts[r["channel"]] + 1 for r in rows}
        epochs = {r["channel"]: r["epoch"] for r in rows}
        out = []
        for pending in fresh:
            offset = next_offset[pending.channel]
            next_offset[pending.channel] = offset + 1
            frame = _frame(pending.channel, pending.event, pending.data, offset)
            publication = Publication(pending.channel, offset, frame, pending.exclude)
            out.append((pending, publication, epochs[pending.channel]))
        await connection.execute(
            f"INSERT INTO {s}.publications "
            '(channel, "offset", epoch, event, data, exclude, idempotency_key) '
            "SELECT c, o, e, v::json, d::json, x, k FROM unnest($1::text[], $2::bigint[], "
            "$3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) "
            "AS u(c, o, e, v, d, x, k)",
            [p.channel for _, p, _ in out],
            [p.offset for _, p, _ in out],
            [epoch for _, _, epoch in out],
            [pending.event for pending, _, _ in out],
            [pending.data for pending, _, _ in out],
            [p.exclude for _, p, _ in out],
            [None if q.idempotency is None else q.idempotency.key for q, _, _ in out],
        )
    position = {id(pending): (p.offset, epoch) for pending, p, epoch in out}
    repeated += [(repeat, position[id(first)]) for repeat, first in repeats]
    return out, repeated


async def _keys_seen(
    connection: Connection, s: str, batch: list[Pending]
) -> dict[tuple[str, str], tuple[int, str]]:
    """(channel, key) -> (offset, epoch) of the publications already stored with a key of
    ``batch``, within that key's window (the newest, if several)."""
    keyed = [p for p in batch if p.idempotency is not None]
    if not keyed:
        return {}
    rows = await connection.fetch(
        f'SELECT u.c, u.k, p."offset", p.epoch FROM unnest($1::text[], $2::text[], '
        f"$3::float8[]) AS u(c, k, w) JOIN {s}.publications p "
        "ON p.channel = u.c AND p.idempotency_key = u.k "
        "AND p.published_at > now() - make_interval(secs => u.w) "
        'ORDER BY p."offset"',
        [p.channel for p in keyed],
        [p.idempotency.key for p in keyed if p.idempotency is not None],
        [p.idempotency.window for p in keyed if p.idempotency is not None],
    )
    return {(r["c"], r["k"]): (r["offset"], r["epoch"]) for r in rows}


def publication(channel: str, row: asyncpg.Record) -> Publication:
    """A stored row (``offset``, ``event``, ``data``, ``exclude``) as the broker carries it."""
    return Publication(
        channel,
        row["offset"],
        _frame(channel, row["event"], row["data"], row["offset"]),
        row["exclude"],
    )


def _frame(channel: str, event: str, data: str, offset: int) -> bytes:
    """The publication's frame, the same bytes live and replayed: ``event`` and ``data`` are
    their JSON texts."""
    return (
        b'{"event":'
        + event.encode()
        + b',"channel":'
        + orjson.dumps(channel)
        + b',"data":'
        + data.encode()
        + b',"offset":'
        + str(offset).encode()
        + b"}"
    )
