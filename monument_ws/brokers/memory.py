"""The embedded broker: one process, no dependencies; the default.

Its epoch is random per start, so a client that recovers across a restart
learns ``recovered: false``. History, presence and the client registry live
in this process's memory, bounded by each namespace's history size and age.
Idempotency keys (:class:`~monument_ws.brokers.base.Idempotency`) are a per-channel table
in publish order, bounded by the key's ``limit`` and dropped once their ``window`` passed
(checked at every keyed publish, for every channel).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from .. import protocol
from .base import (
    Broker,
    History,
    HistoryPage,
    Idempotency,
    Publication,
    history_after,
    page_of,
)
from .local_clients import LocalClients


class MemoryBroker(Broker):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.epoch = secrets.token_hex(4)
        self._clock = clock
        # A channel's offset counter is kept for the broker's life so offsets never repeat in an epoch.
        self._offsets: dict[str, int] = {}
        self._history: dict[str, deque[tuple[Publication, float]]] = {}
        self._subscribed: set[str] = set()
        self._presence: dict[str, dict[str, tuple[dict[str, Any], float]]] = {}
        self._clients = LocalClients()
        # box -> (seq, expires, item), oldest first; a box is deleted once empty
        self._boxes: dict[str, deque[tuple[int, float, bytes]]] = {}
        self._box_seq = 0  # one counter for every box: seqs only grow, even across expiry
        # channel -> idempotency key -> (offset, expires), oldest first; bounded by the
        # Idempotency's limit and window, and deleted once empty
        self._keys: dict[str, OrderedDict[str, tuple[int, float]]] = {}
        # (expires, channel) per key remembered, oldest first: channels nobody publishes to
        # again lose their expired keys too
        self._key_expiries: deque[tuple[float, str]] = deque()

    async def publish(
        self,
        channel: str,
        event: str,
        data: Any,
        *,
        history_size: int,
        history_ttl: float,
        exclude: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> tuple[int, str]:
        if idempotency is not None:
            first = self._seen(channel, idempotency)
            if first is not None:
                return first, self.epoch
        offset = self._offsets.get(channel, 0) + 1
        frame = protocol.channel_push(
            channel, event, data, offset
        )  # may raise TypeError: nothing changed yet
        await self.publish_at(
            Publication(channel, offset, frame, exclude),
            history_size=history_size,
            history_ttl=history_ttl,
        )
        if idempotency is not None:
            self._remember(channel, idempotency, offset)
        return offset, self.epoch

    async def publish_at(
        self, publication: Publication, *, history_size: int, history_ttl: float
    ) -> None:
        channel = publication.channel
        self._offsets[channel] = max(self._offsets.get(channel, 0), publication.offset)
        if history_size > 0:
            history = self._history.setdefault(channel, deque())
            history.append((publication, self._clock() + history_ttl))
            while len(history) > history_size:
                history.popleft()
        if channel in self._subscribed:
            self.listener.deliver(publication)

    def _seen(self, channel: str, idempotency: Idempotency) -> int | None:
        """The offset published with this key within its window (expired keys are dropped)."""
        now = self._clock()
        while self._key_expiries and self._key_expiries[0][0] <= now:
            self._prune_keys(self._key_expiries.popleft()[1], now)
        self._prune_keys(channel, now)
        keys = self._keys.get(channel)
        seen = None if keys is None else keys.get(idempotency.key)
        return None if seen is None else seen[0]

    def _prune_keys(self, channel: str, now: float) -> None:
        keys = self._keys.get(channel)
        if keys is None:
            return
        while keys and next(iter(keys.values()))[1] <= now:
            keys.popitem(last=False)
        if not keys:
            del self._keys[channel]

    def _remember(self, channel: str, idempotency: Idempotency, offset: int) -> None:
        expires = self._clock() + idempotency.window
        keys = self._keys.setdefault(channel, OrderedDict())
        keys[idempotency.key] = (offset, expires)
        while len(keys) > idempotency.limit:
            keys.popitem(last=False)
        self._key_expiries.append((expires, channel))

    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    async def history(self, channel: str, since: int, epoch: str | None) -> History:
        top = self._offsets.get(channel, 0)
        if epoch != self.epoch or since > top:
            return History([], top, self.epoch, complete=False)
        kept = [p for p, _ in self._live_history(channel) if p.offset > since]
        return history_after(since, top, self.epoch, kept)

    async def history_page(
        self, channel: str, *, before: int | None = None, after: int | None = None, limit: int
    ) -> HistoryPage:
        top = self._offsets.get(channel, 0)
        kept = [p for p, _ in self._live_history(channel)]
        publications, more = page_of(kept, before=before, after=after, limit=limit, top=top)
        return HistoryPage(publications, top, self.epoch, more)

    def _live_history(self, channel: str) -> deque[tuple[Publication, float]]:
        """``channel``'s history without its expired publications (forgotten once empty)."""
        history = self._history.get(channel)
        if history is None:
            return deque()
        now = self._clock()
        while history and history[0][1] < now:
            history.popleft()
        if not history:
            del self._history[channel]
        return history

    async def publish_ephemeral(self, channel: str, frame: bytes) -> None:
        if channel in self._subscribed:
            self.listener.deliver_ephemeral(channel, frame)

    async def broadcast(self, frame: bytes, exclude: str | None = None) -> None:
        self.listener.deliver_broadcast(frame, exclude)

    async def control(self, message: bytes) -> None:
        self.listener.deliver_control(message)

    async def presence_set(
        self, channel: str, client_id: str, info: dict[str, Any], ttl: float
    ) -> None:
        self._presence.setdefault(channel, {})[client_id] = (info, self._clock() + ttl)

    async def presence_remove(self, channel: str, client_id: str) -> None:
        members = self._presence.get(channel)
        if members is not None:
            members.pop(client_id, None)
            if not members:
                del self._presence[channel]

    async def presence_get(self, channel: str) -> dict[str, dict[str, Any]]:
        members = self._presence.get(channel, {})
        now = self._clock()
        for client_id in [c for c, (_, expires) in members.items() if expires < now]:
            del members[client_id]
        if not members:
            self._presence.pop(channel, None)
        return {client_id: info for client_id, (info, _) in members.items()}

    async def presence_replace(
        self,
        channel: str,
        client_id: str,
        expected: dict[str, Any] | None,
        new: dict[str, Any] | None,
        ttl: float,
    ) -> bool:
        current = (await self.presence_get(channel)).get(client_id)
        if current != expected:
            return False
        if new is None:
            await self.presence_remove(channel, client_id)
        else:
            await self.presence_set(channel, client_id, new, ttl)
        return True

    async def presence_count(self, channel: str) -> int:
        return len(self._presence.get(channel, ()))

    async def queue_push(self, box: str, item: bytes, *, size: int, ttl: float) -> int:
        items = self._live_box(box)
        if items is None:
            items = self._boxes[box] = deque()
        seq = self._box_seq = max(self._box_seq + 1, time.time_ns() // 1000)
        items.append((seq, self._clock() + ttl, item))
        while len(items) > size:
            items.popleft()
        return seq

    async def queue_read(self, box: str, after: int) -> list[tuple[int, bytes]]:
        return [(seq, item) for seq, _, item in self._live_box(box) or () if seq > after]

    async def queue_remove(self, box: str, seq: int, *, through: bool = False) -> int:
        items = self._boxes.get(box)
        if items is None:
            return 0
        kept = deque(entry for entry in items if entry[0] > seq or (not through and entry[0] < seq))
        removed = len(items) - len(kept)
        self._boxes[box] = kept
        self._live_box(box)
        return removed

    def _live_box(self, box: str) -> deque[tuple[int, float, bytes]] | None:
        """``box`` without its expired items; None (and forgotten) once it is empty."""
        items = self._boxes.get(box)
        if items is None:
            return None
        now = self._clock()
        while items and items[0][1] < now:
            items.popleft()
        if not items:
            del self._boxes[box]
            return None
        return items

    async def register_client(self, client_id: str) -> None:
        self._clients.add(client_id)

    async def unregister_client(self, client_id: str) -> None:
        self._clients.remove(client_id)

    async def send_to_client(self, client_id: str, frame: bytes) -> bool:
        if client_id not in self._clients:
            return False
        self.listener.deliver_to_client(client_id, frame)
        return True

    def stats(self) -> dict[str, int]:
        """Sizes of the broker's tables (tests use it to prove nothing grows)."""
        return {
            "channels_subscribed": len(self._subscribed),
            "histories": len(self._history),
            "presence_channels": len(self._presence),
            "clients": len(self._clients),
            "queues": len(self._boxes),
            "idempotency_keys": sum(len(keys) for keys in self._keys.values()),
        }
