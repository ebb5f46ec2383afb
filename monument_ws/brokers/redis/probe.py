"""Whether each shard of a sharded broker answers: a PING every ``interval``, at most ``timeout``.

A shard whose Redis is gone (killed, restarted) is noticed by its own subscription connection
at once (:mod:`.subscriber`). One that hangs -- paused, swapping, stuck on a slow command, a
network that drops packets without resetting connections -- keeps its connections open and
looks healthy, while every command on it waits for the 5-second socket timeout. The probe
notices it within ``interval + timeout`` and the sharded broker then refuses that shard's
requests at once with ``unavailable`` and reports it down, until a PING is answered again;
then the probe writes the shard's client registry again (clients that connected meanwhile
were only counted, :meth:`.RedisBroker.refresh_clients`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from .broker import RedisBroker
from .ring import redacted

log = logging.getLogger("monument_ws.redis")


class Probe:
    """Pings ``shards`` concurrently; :meth:`answers` says which answered the last time."""

    def __init__(
        self, shards: Sequence[RedisBroker], *, interval: float = 1.0, timeout: float = 3.0
    ) -> None:
        self._shards = shards
        self._interval = interval
        self._timeout = timeout
        self._silent: set[int] = set()  # shards whose last PING was not answered in time
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def answers(self, index: int) -> bool:
        """Whether shard ``index`` answered its last PING (True until one went unanswered)."""
        return index not in self._silent

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await asyncio.gather(*(self._ping(i) for i in range(len(self._shards))))

    async def _ping(self, index: int) -> None:
        shard = self._shards[index]
        if not shard.healthy:
            self._silent.discard(index)  # down already: its subscriber says when it is back
            return
        try:
            await asyncio.wait_for(shard.ping(), self._timeout)
        except Exception as exc:
            if index not in self._silent:
                log.warning("broker shard %s does not answer: %r", redacted(shard.url), exc)
            self._silent.add(index)
            return
        if index in self._silent:
            log.warning("broker shard %s answers again", redacted(shard.url))
            self._silent.discard(index)
            try:
                await asyncio.wait_for(shard.refresh_clients(), self._timeout)
            except Exception as exc:  # the periodic refresh tries again
                log.warning(
                    "rewriting the client registry on %s failed: %r", redacted(shard.url), exc
                )
