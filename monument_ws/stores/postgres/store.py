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
from typing import Any

import asyncpg
import orjson

from ...brokers.base import History, HistoryPage, Idempotency, history_after
from ...protocol.errors import Unavailable
from ..base import Retention, Store
from .batch import Connection, commit, publication
from .schema import migrate, quoted
from .writer import Pending, Writer

log = logging.getLogger("monument_ws.store")


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
                published, repeated = await commit(connection, self._s, batch)
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
        kept = [publication(channel, row) for row in rows]
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
        kept = [publication(channel, row) for row in rows]
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


def _moment(now: float | None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.UTC)
    return datetime.datetime.fromtimestamp(now, datetime.UTC)


__all__ = ["PostgresStore"]
