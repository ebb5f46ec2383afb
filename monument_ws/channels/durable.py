"""Durable channels: the channels whose namespace says ``persist: true`` go through the store.

For such a channel the store is the authority (see :mod:`monument_ws.stores.base`):

* a publish is written to the store, which numbers it (epoch and offset) and commits it; only
  then is it handed to the broker with those numbers (:meth:`Broker.publish_at`), so it reaches
  subscribers on every process and the broker's history as any publication does, and only then
  is the publish acknowledged (if the broker does not take it, it is acknowledged all the same:
  the channel's next publication the broker takes arrives one offset too far, and every
  process fills that gap for its live subscribers from the store, see
  :mod:`monument_ws.channels.recovery`);
* a subscribe reads the channel's epoch and offset, and with ``since`` what it missed, from the
  store (:meth:`Durable.history`), so a recovery reaches back as far as the store keeps, also
  across a broker that lost its data;
* a task deletes what the namespace's ``persist_ttl`` / ``persist_size`` no longer keep, every
  ``prune_interval`` seconds, in batches of ``prune_batch`` rows.

Other channels are untouched: the broker numbers them and answers their recoveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..brokers.base import Broker, History, HistoryPage, Idempotency, Publication
from ..config import Config
from ..protocol.errors import ConfigError, Unavailable
from ..stores import Retention, Store, from_url
from .namespaces import Namespaces

log = logging.getLogger("monument_ws.store")


class Durable:
    """The store of one process and the persisted channels it serves."""

    def __init__(
        self,
        broker: Broker,
        store: Store,
        namespaces: Namespaces,
        *,
        recovery_limit: int = 10_000,
        prune_interval: float = 60.0,
        prune_batch: int = 500,
    ) -> None:
        self.broker = broker
        self.store = store
        self._namespaces = namespaces
        self._recovery_limit = recovery_limit
        self._prune_interval = prune_interval
        self._prune_batch = prune_batch
        self._pruner: asyncio.Task[None] | None = None
        store.attach(self._announce)

    @classmethod
    def of(cls, config: Config, broker: Broker, namespaces: Namespaces) -> Durable | None:
        """The durable channels ``config`` asks for, or None without a ``store``. ConfigError
        when a namespace persists but no store is set; MissingExtra without asyncpg."""
        store = from_url(
            config.store,
            schema=config.store_schema,
            queue_size=config.store_queue,
            timeout=config.store_timeout,
        )
        if store is None:
            persisted = [pattern for pattern, options in config.channels if options.persist]
            if persisted:
                raise ConfigError(
                    f"the channels {', '.join(persisted)} persist but no store is set: "
                    "set store (--store, MONUMENT_WS_STORE) to postgresql://…"
                )
            return None
        return cls(broker, store, namespaces, recovery_limit=config.store_recovery_limit)

    def persisted(self, channel: str) -> bool:
        return self._namespaces.options(channel).persist

    def retention(self, channel: str) -> Retention | None:
        """How long ``channel``'s publications stay in the store; None: not persisted (kept)."""
        options = self._namespaces.options(channel)
        if not options.persist:
            return None
        return Retention(options.persist_ttl, options.persist_size)

    async def start(self) -> None:
        await self.store.start()
        self._pruner = asyncio.get_running_loop().create_task(self._prune_forever())

    async def stop(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
        await self.store.stop()

    async def publish(
        self,
        channel: str,
        event: str,
        data: Any,
        exclude: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> tuple[int, str]:
        """Write to the store; returns ``(offset, epoch)`` once committed and announced (a
        repeated idempotency key: the first publication's, nothing written)."""
        return await self.store.append(channel, event, data, exclude, idempotency)

    async def history(self, channel: str, since: int, epoch: str | None) -> History:
        """A recovery read: from the store for a persisted channel, else from the broker."""
        if self.persisted(channel):
            return await self.store.history(channel, since, epoch, self._recovery_limit)
        return await self.broker.history(channel, since, epoch)

    def source(self, channel: str) -> Durable | None:
        """This, for a persisted channel (its pages come from the store); None otherwise."""
        return self if self.persisted(channel) else None

    async def history_page(
        self, channel: str, *, before: int | None = None, after: int | None = None, limit: int
    ) -> HistoryPage:
        """A page of a persisted channel's history from the store (``ws:history``)."""
        return await self.store.history_page(channel, before=before, after=after, limit=limit)

    async def prune(self) -> int:
        """Delete what retention no longer keeps, now; returns how many publications."""
        return await self.store.prune(self.retention, self._prune_batch)

    async def _announce(self, publication: Publication, epoch: str) -> None:
        options = self._namespaces.options(publication.channel)
        await self.broker.publish_at(
            publication, history_size=options.history_size, history_ttl=options.history_ttl
        )

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(self._prune_interval)
            try:
                deleted = await self.prune()
            except Unavailable as exc:
                log.warning("retention skipped a round: %s", exc)
                continue
            except Exception:  # the next round may do better; retention must not stop
                log.exception("retention failed a round")
                continue
            if deleted:
                log.info("retention deleted %d stored publications", deleted)
