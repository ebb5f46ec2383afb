"""The PostgreSQL store: numbering, writing, reading and pruning persisted channels.

**Numbering.** A batch is one transaction: one statement takes the next offsets of every
channel in the batch (``channels.top`` incremented by how many it holds, the row made with a
new epoch when the channel is new), one inserts the publications. Before it, the writer's
connection takes a session advisory lock per channel (in sorted order, so two processes never
wait on each other in a circle) and keeps it until every committed publication was handed to
:attr:`Store.announce`: the broker therefore announces a channel's publications in offset
order, also when several processes publish to it. A history read takes the same lock shared,
so what it reads was announced already.

**Faults.** Every call is bounded by ``timeout``. A failure to reach the database makes the
store unhealthy and the call Unavailable; while unhealthy, a probe tries the database every
``probe_interval`` seconds and the store turns healthy again once it answers (writes and
reads also work again as soon as the database does: the pool makes new connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias

import asyncpg
import orjson

from ...brokers.base import History, HistoryPage, Idempotency, Publication, history_after
from ...protocol.errors import Unavailable
from ..base import Retention, Store
from .schema import migrate, quoted
from .writer import Pending, Writer

log = logging.getLogger("monument_ws.store")

#: A connection of the pool, as asyncpg hands it out (generic in its stubs only).
Connection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"

#: What a lost or failing database raises through asyncpg.
FAILURES = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


def _database_down(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached or used, rather than that it refused
    one statement (an error in its answer, or arguments the driver could not encode): only the
    former marks the store unhealthy, so no request can take a node out of readiness."""
    if isinstance(exc, asyncpg.PostgresError):
        return isinstance(
            exc, asyncpg.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError
        )
    return not isinstance(exc, ValueError)  # the driver's DataError: arguments, not the database


class PostgresStore(Store):
    """Persisted channels in the tables of :mod:`~monument_ws.stores.postgres.schema`."""

    def __init__(
        self,
        url: str,
        *,
        schema: str = "monument_ws",
        queue_size: int = 10_000,
        timeout: float = 5.0,
        batch_size: int = 500,
        pool_size: int = 4,
        probe_interval: float = 1.0,
    ) -> None:
        super().__init__()
        self.url = url
        self.schema = schema
        self._s = quoted(schema)
        self._timeout = timeout
        self._pool_size = pool_size
        self._probe_interval = probe_interval
        self._pool: asyncpg.Pool | None = None
        self._healthy = False
        self._probe: asyncio.Task[None] | None = None
        self.writer = Writer(self._write, queue_size=queue_size, batch_size=batch_size)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=0,
                max_size=self._pool_size,
                timeout=self._timeout,
                command_timeout=self._timeout,
            )
            async with self._connection() as connection:
                await migrate(connection, self.schema)
        except Unavailable:
            await self._close_pool()
            raise
        self.writer.start()
        self._probe = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        await self.writer.stop()
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        await self._close_pool()
        self._healthy = False

    async def _close_pool(self) -> None:
        if self._pool is not None:
            with contextlib.suppress(*FAILURES):
                await asyncio.wait_for(self._pool.close(), self._timeout)
            self._pool.terminate()
            self._pool = None

    @property
    def healthy(self) -> bool:
        return self._healthy

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A pooled connection; a database failure inside becomes Unavailable (and unhealthy)."""
        if self._pool is None:
            raise Unavailable("the store is not running")
        try:
            async with self._pool.acquire(timeout=self._timeout) as connection:
                yield connection
        except FAILURES as exc:
            if _database_down(exc):
                if self._healthy:
                    log.warning("the store's database failed: %s", exc)
                self._healthy = False
            raise Unavailable(f"the store's database failed: {exc}") from exc
        self._healthy = True

    async def _watch(self) -> None:
        """While unhealthy, try the database every ``probe_interval`` seconds."""
        while True:
            await asyncio.sleep(self._probe_interval)
            if not self._healthy:
                with contextlib.suppress(Unavailable):
                    async with self._connection() as connection:
                        await connection.fetchval("SELECT 1")
                    log.warning("the store's database answers again")

    # --- writing -----------------------------------------------------------------------

    async def append(
        self,
        channel: str,
        event: str,
        data: Any,
        exclude: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> tuple[int, str]:
        if exclude is not None and "\x00" in exclude:
            raise ValueError("a client id cannot hold NUL")
        text = orjson.dumps(data).decode()  # TypeError before anything is queued
        return await self.writer.submit(
            Pending(channel, orjson.dumps(event).decode(), text, exclude, idempotency)
        )

    async def _write(self, batch: list[Pending]) -> None:
        """One transaction for ``batch``, then its announcement, under the channels' locks."""
        channels = sorted({pending.channel for pending in batch})
        async with self._connection() as connection:
            await connection.execute(
                "SELECT pg_advisory_lock(hashtextextended(k, 0)) "
                "FROM unnest($1::text[]) AS k ORDER BY k",
                [self._lock_key(channel) for channel in channels],
            )
            try:
                published, repeated = await self._commit(connection, batch)
                for pending, position in repeated:
                    if not pending.done.done():
                        pending.done.set_result(position)
                for pending, publication, epoch in published:
                    try:
                        await self.announce(publication, epoch)
                    except Exception as exc:  # committed: the next announced fills the gap
                        log.warning("announcing %r failed: %s", publication.channel, exc)
                    if not pending.done.done():
                        pending.done.set_result((publication.offset, epoch))
            finally:
                with contextlib.suppress(*FAILURES):
                    await connection.execute("SELECT pg_advisory_unlock_all()")

    async def _commit(
        self, connection: Connection, batch: list[Pending]
    ) -> tuple[list[tuple[Pending, Publication, str]], list[tuple[Pending, tuple[int, str]]]]:
        """Write ``batch`` (the channels' locks held): the publications written, and the
        publishes whose idempotency key was seen within its window -- in the store, or earlier
        in this batch -- with the first one's position (those are not written again)."""
        s = self._s
        async with connection.transaction():
            known = await self._keys_seen(connection, batch)
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
        self, connection: Connection, batch: list[Pending]
    ) -> dict[tuple[str, str], tuple[int, str]]:
        """(channel, key) -> (offset, epoch) of the publications already stored with a key of
        ``batch``, within that key's window (the newest, if several)."""
        keyed = [p for p in batch if p.idempotency is not None]
        if not keyed:
            return {}
        rows = await connection.fetch(
            f'SELECT u.c, u.k, p."offset", p.epoch FROM unnest($1::text[], $2::text[], '
            f"$3::float8[]) AS u(c, k, w) JOIN {self._s}.publications p "
            "ON p.channel = u.c AND p.idempotency_key = u.k "
            "AND p.published_at > now() - make_interval(secs => u.w) "
            'ORDER BY p."offset"',
            [p.channel for p in keyed],
            [p.idempotency.key for p in keyed if p.idempotency is not None],
            [p.idempotency.window for p in keyed if p.idempotency is not None],
        )
        return {(r["c"], r["k"]): (r["offset"], r["epoch"]) for r in rows}

    def _lock_key(self, channel: str) -> str:
        return f"monument_ws.channel:{self.schema}:{channel}"

    async def _share_lock(self, connection: Connection, channel: str) -> None:
        """Wait for a writer of ``channel`` to finish announcing (until the transaction ends):
        a read never sees a publication the broker has not been handed yet."""
        await connection.execute(
            "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))",
            self._lock_key(channel),
        )

    # --- reading -----------------------------------------------------------------------

    async def history(self, channel: str, since: int, epoch: str | None, limit: int) -> History:
        s = self._s
        async with self._connection() as connection, connection.transaction():
            await self._share_lock(connection, channel)
            current, top = await self._position(connection, channel)
            if epoch != current or since > top or top - since > limit:
                return History([], top, current, complete=False)
            if since == top:
                return History([], top, current, complete=True)
            rows = await connection.fetch(
                f'SELECT "offset", event, data, exclude FROM {s}.publications '
                f'WHERE channel = $1 AND "offset" > $2 AND "offset" <= $3 ORDER BY "offset"',
                channel,
                since,
                top,
            )
        kept = [_publication(channel, row) for row in rows]
        return history_after(since, top, current, kept)

    async def history_page(
        self, channel: str, *, before: int | None = None, after: int | None = None, limit: int
    ) -> HistoryPage:
        s = self._s
        bound: int | None = after if after is not None else before
        if after is not None:
            condition, order = '"offset" > $2 AND "offset" <= $3', "ASC"
        else:
            condition, order = '"offset" < $2 AND "offset" <= $3', "DESC"
        async with self._connection() as connection, connection.transaction():
            await self._share_lock(connection, channel)
            current, top = await self._position(connection, channel)
            rows = await connection.fetch(
                f'SELECT "offset", event, data, exclude FROM {s}.publications '
                f'WHERE channel = $1 AND {condition} ORDER BY "offset" {order} LIMIT $4',
                channel,
                top + 1 if bound is None else bound,
                top,
                limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        if after is None:
            rows.reverse()
        kept = [_publication(channel, row) for row in rows]
        return HistoryPage(kept, top, current, more)

    async def _position(self, connection: Connection, channel: str) -> tuple[str, int]:
        """The channel's epoch and newest offset; a channel the store never heard of gets its
        row (and so its epoch) now, so the position a first subscriber is given stays valid."""
        s = self._s
        select = f"SELECT epoch, top FROM {s}.channels WHERE channel = $1"
        row = await connection.fetchrow(select, channel)
        if row is None:
            await connection.execute(
                f"INSERT INTO {s}.channels (channel, epoch, top) VALUES "
                "($1, substr(md5(random()::text || clock_timestamp()::text), 1, 8), 0) "
                "ON CONFLICT (channel) DO NOTHING",
                channel,
            )
            row = await connection.fetchrow(select, channel)
        assert row is not None  # inserted above, and retention never deletes a channel
        return row["epoch"], row["top"]

    # --- retention ---------------------------------------------------------------------

    async def prune(
        self, retention: Callable[[str], Retention | None], batch: int, now: float | None = None
    ) -> int:
        s = self._s
        deleted = 0
        after = ""
        while True:
            async with self._connection() as connection:
                rows = await connection.fetch(
                    f"SELECT channel, top FROM {s}.channels WHERE channel > $1 "
                    "ORDER BY channel LIMIT 500",
                    after,
                )
            if not rows:
                return deleted
            after = rows[-1]["channel"]
            for row in rows:
                rule = retention(row["channel"])
                if rule is None:
                    continue
                if rule.size:
                    deleted += await self._delete(
                        '"offset" <= $2', row["channel"], row["top"] - rule.size, batch
                    )
                if rule.ttl:
                    cutoff = _moment(now) - datetime.timedelta(seconds=rule.ttl)
                    deleted += await self._delete(
                        "published_at < $2", row["channel"], cutoff, batch
                    )

    async def _delete(self, condition: str, channel: str, bound: Any, batch: int) -> int:
        """Delete ``channel``'s publications matching ``condition``, ``batch`` at a time."""
        s = self._s
        deleted = 0
        while True:
            async with self._connection() as connection:
                status = await connection.execute(
                    f"DELETE FROM {s}.publications WHERE ctid = ANY(ARRAY("
                    f"SELECT ctid FROM {s}.publications WHERE channel = $1 AND {condition} "
                    "LIMIT $3))",
                    channel,
                    bound,
                    batch,
                )
            count = int(status.rsplit(" ", 1)[-1])
            deleted += count
            if count < batch:
                return deleted


def _publication(channel: str, row: asyncpg.Record) -> Publication:
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


def _moment(now: float | None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.UTC)
    return datetime.datetime.fromtimestamp(now, datetime.UTC)


__all__ = ["PostgresStore"]
