"""Presence: who is in a channel, across processes, with smartersockets' four transitions.

Per channel (in a namespace with ``presence`` on) and per client id::

                 subscribe                     socket closed, or silent
    (absent) ──────────────▶ connected ───────────────────────────────▶ disconnected
        ▲    client.connected    ▲    longer than presence_disconnect       │  client.disconnected
        │                        │                                          │
        │                        └──────── same client subscribes ──────────┤
        │                               again (resume): client.reconnected  │
        │                                                                   │
        └──────── unsubscribe, or disconnected longer than presence_removal ┘
                                   client.removed

A member removed for its silence while its socket is still subscribed (it was
silent past ``presence_removal`` but never closed) comes back, as
``client.reconnected``, as soon as it is heard from again: its ``ws:heartbeat``
at once, any other frame at the next sweep. Its record is written again from
the last one this process saw (label, meta, ``first_seen``).

Each transition emits its bus event (``client.connected`` …, named in
:mod:`monument_ws.signals`; keywords ``channel`` and ``client`` -- the member
record) **exactly once**: the record
lives in the broker and every transition is a compare-and-set there, so when
several processes race (e.g. all notice that a dead process's member went
silent), one wins and only it emits.

A member is alive while its sockets send anything: every frame counts, and
``ws:heartbeat`` (the Python client sends one every ``heartbeat`` seconds)
refreshes at once. The sweep, every ``presence_sync`` seconds, writes
``last_seen`` for local members that were heard from (at most once per
``heartbeat`` per member, which bounds broker writes), then moves silent
members along the state machine. A process that dies without a goodbye
stops refreshing its members; the others' sweeps mark them disconnected,
then removed. Dead TCP connections are found by the server's WebSocket pings.

In a namespace with ``presence_events`` the transition is also pushed to the channel's
subscribers, once, by the process that won it: ``ws:member`` whose data is the member record
with ``channel`` and ``state`` set to the transition (``reconnected`` included).

Time comes from an injectable clock, so tests need not sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .. import protocol
from ..brokers.base import Broker
from ..connection.socket import Socket
from ..protocol.errors import MonumentWSError
from ..signals import (
    PRESENCE_CONNECTED,
    PRESENCE_DISCONNECTED,
    PRESENCE_RECONNECTED,
    PRESENCE_REMOVED,
)
from .namespaces import Namespaces

if TYPE_CHECKING:
    from ..bus import EventBus
    from ..config import Config

log = logging.getLogger("monument_ws.presence")

#: The ``state`` a ``ws:member`` push gives for each transition's bus event.
_PUSHED_STATE: Final = {
    PRESENCE_CONNECTED: "connected",
    PRESENCE_DISCONNECTED: "disconnected",
    PRESENCE_RECONNECTED: "reconnected",
    PRESENCE_REMOVED: "removed",
}
#: The push that tells subscribers of a presence transition (namespaces with presence_events).
MEMBER_EVENT: Final = "ws:member"

#: smartersockets' documented values, for small deployments: pass as settings.
SMALL: Final = {
    "heartbeat": 2.0,
    "presence_sync": 5.0,
    "presence_disconnect": 10.0,
    "presence_removal": 60.0,
}


@dataclass(slots=True)
class _Local:
    """This process's sockets of one member, and what the sweep last saw of them."""

    sockets: set[Socket]
    frames_seen: int  # sum of the sockets' frames_in at the last sweep
    written: float  # when last_seen was last written to the broker
    last: dict[str, Any] | None = None  # the member's record as last written or read here


class Presence:
    """The presence state machine of one plugin instance."""

    def __init__(
        self,
        broker: Broker,
        bus: EventBus,
        config: Config,
        clock: Callable[[], float] = time.time,
        namespaces: Namespaces | None = None,
    ) -> None:
        """``namespaces`` says which channels want ``ws:member`` pushes (the plugin's own, which
        the application may add to; by default those of ``config.channels``)."""
        self.broker = broker
        self.bus = bus
        self.config = config
        self.clock = clock
        self._namespaces = namespaces if namespaces is not None else Namespaces(config.channels)
        self._local: dict[tuple[str, str], _Local] = {}
        self._channels: dict[str, int] = {}  # presence channels with local members
        self._task: asyncio.Task[None] | None = None

    @property
    def ttl(self) -> float:
        """How long a member record outlives its last refresh in the broker."""
        cfg = self.config
        return cfg.presence_disconnect + cfg.presence_removal + 2 * cfg.presence_sync

    def local_members(self) -> int:
        return len(self._local)

    def local_channels(self) -> list[str]:
        """The channel of each member held by this process's sockets (one entry per member)."""
        return [channel for channel, _ in self._local]

    # --- transitions ------------------------------------------------------

    async def _replace(
        self, channel: str, client_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> bool:
        return await self.broker.presence_replace(channel, client_id, old, new, self.ttl)

    async def _emit(self, event: str, channel: str, record: dict[str, Any]) -> None:
        try:
            await self.bus.emit(event, channel=channel, client=record)
        except Exception:
            log.exception("a receiver of %s failed", event)
        if self._namespaces.options(channel).presence_events:
            member = {**record, "channel": channel, "state": _PUSHED_STATE[event]}
            try:
                await self.broker.publish_ephemeral(
                    channel, protocol.push(MEMBER_EVENT, member, channel=channel)
                )
            except MonumentWSError as exc:
                log.warning("the %s push of %r was lost: %s", event, channel, exc)

    async def join(self, socket: Socket, channel: str, label: Any = None, meta: Any = None) -> None:
        """``socket`` subscribed to ``channel``: connected, reconnected, or refreshed."""
        key = (channel, socket.client_id)
        local = self._local.get(key)
        if local is None:
            local = self._local[key] = _Local(set(), 0, 0.0)
            self._channels[channel] = self._channels.get(channel, 0) + 1
        local.sockets.add(socket)
        for _ in range(3):  # a lost compare-and-set means another process changed it: read again
            now = self.clock()
            old = (await self.broker.presence_get(channel)).get(socket.client_id)
            new = {
                "client_id": socket.client_id,
                "user": socket.state.get("user"),
                "label": label if label is not None else (old or {}).get("label"),
                "meta": meta if meta is not None else (old or {}).get("meta"),
                "state": "connected",
                "first_seen": old["first_seen"] if old else now,
                "last_seen": now,
            }
            if await self._replace(channel, socket.client_id, old, new):
                local.written, local.last = now, new
                if old is None:
                    await self._emit(PRESENCE_CONNECTED, channel, new)
                elif old["state"] == "disconnected":
                    await self._emit(PRESENCE_RECONNECTED, channel, new)
                return

    async def leave(self, socket: Socket, channel: str, *, closed: bool) -> None:
        """``socket`` left: closed → disconnected (it may come back); unsubscribed → removed."""
        key = (channel, socket.client_id)
        local = self._local.get(key)
        if local is None or socket not in local.sockets:
            return
        local.sockets.discard(socket)
        if local.sockets:
            return  # the same client is still here through another socket
        del self._local[key]
        self._channels[channel] -= 1
        if not self._channels[channel]:
            del self._channels[channel]
        for _ in range(3):
            old = (await self.broker.presence_get(channel)).get(socket.client_id)
            if old is None:
                return
            if closed:
                if old["state"] != "connected":
                    return
                new: dict[str, Any] | None = {
                    **old,
                    "state": "disconnected",
                    "last_seen": self.clock(),
                }
                event = PRESENCE_DISCONNECTED
            else:
                new, event = None, PRESENCE_REMOVED
            if await self._replace(channel, socket.client_id, old, new):
                await self._emit(event, channel, new or {**old, "state": "removed"})
                return

    async def heartbeat(self, socket: Socket, channels: list[str] | None) -> None:
        """ws:heartbeat: refresh ``socket``'s memberships (those named, or all) now; a member
        that was marked disconnected or removed meanwhile is reconnected."""
        now = self.clock()
        for (channel, client_id), local in list(self._local.items()):
            if client_id != socket.client_id or socket not in local.sockets:
                continue
            if channels is not None and channel not in channels:
                continue
            old = (await self.broker.presence_get(channel)).get(client_id)
            if not self._holds(channel, client_id, local):
                continue  # it left while we read (ws:unsubscribe, close): nothing to refresh
            local.frames_seen = sum(s.frames_in for s in local.sockets)
            await self._refresh(channel, client_id, local, old, now)

    async def _refresh(
        self,
        channel: str,
        client_id: str,
        local: _Local,
        old: dict[str, Any] | None,
        now: float,
    ) -> None:
        """A local member was heard from at ``now``: write ``last_seen``, and bring it back
        (``client.reconnected``) when its record ``old`` says disconnected or is gone (removed).
        A lost compare-and-set means another process moved it: the next pass looks again.

        Only while this process still holds the member: one that left (its last socket here
        unsubscribed or closed) while ``old`` was being read is not written back, or it would
        stay listed as connected with no socket anywhere (a ghost)."""
        if not self._holds(channel, client_id, local):
            return
        base = old if old is not None else local.last
        if base is None:
            return  # never written: join() has not finished
        fresh = {**base, "state": "connected", "last_seen": now}
        if not await self._replace(channel, client_id, old, fresh):
            return
        if not self._holds(channel, client_id, local):
            # It left while the write was on its way, and leave() may have read the record
            # before it: put back what was there, and tell nobody.
            await self._replace(channel, client_id, fresh, old)
            return
        local.written, local.last = now, fresh
        if old is None or old["state"] != "connected":
            await self._emit(PRESENCE_RECONNECTED, channel, fresh)

    async def sweep(self) -> None:
        """One pass: refresh members heard from here, then move silent ones along."""
        cfg = self.config
        every = min(cfg.heartbeat or cfg.presence_sync, cfg.presence_disconnect / 2)
        for channel in list(self._channels):
            now = self.clock()
            try:
                members = await self.broker.presence_get(channel)
            except MonumentWSError as exc:
                log.warning("presence sweep of %r skipped: %s", channel, exc)
                continue
            for client_id, record in members.items():
                local = self._local.get((channel, client_id))
                if local is not None:
                    local.last = record
                    if self._heard(local) and (
                        record["state"] != "connected" or now - local.written >= every
                    ):
                        await self._refresh(channel, client_id, local, record, now)
                        continue
                await self._age(channel, client_id, record, now)
            # Local members the broker no longer lists were removed for their silence while
            # still subscribed here: heard from since, they come back.
            for (name, client_id), local in list(self._local.items()):
                if (
                    name == channel
                    and client_id not in members
                    and self._holds(name, client_id, local)  # not left since the list
                    and self._heard(local)
                ):
                    await self._refresh(channel, client_id, local, None, now)

    def _holds(self, channel: str, client_id: str, local: _Local) -> bool:
        """Whether ``local`` is still this process's record of the member, with a socket: a
        snapshot taken before an await is stale once leave() has dropped it."""
        return self._local.get((channel, client_id)) is local and bool(local.sockets)

    @staticmethod
    def _heard(local: _Local) -> bool:
        """Whether ``local``'s sockets sent any frame since the last look (and note them); a
        member with no socket left (it left meanwhile) is not heard."""
        if not local.sockets:
            return False
        frames = sum(s.frames_in for s in local.sockets)
        heard = frames != local.frames_seen
        local.frames_seen = frames
        return heard

    async def _age(self, channel: str, client_id: str, record: dict[str, Any], now: float) -> None:
        silent = now - float(record["last_seen"])
        if record["state"] == "connected" and silent > self.config.presence_disconnect:
            new = {**record, "state": "disconnected"}
            if await self._replace(channel, client_id, record, new):
                await self._emit(PRESENCE_DISCONNECTED, channel, new)
        elif (
            record["state"] == "disconnected"
            and silent > self.config.presence_removal
            and await self._replace(channel, client_id, record, None)
        ):
            await self._emit(PRESENCE_REMOVED, channel, {**record, "state": "removed"})

    # --- reading ----------------------------------------------------------

    async def members(
        self, channel: str, limit: int = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        """The ``ws:presence`` reply: count, a page of members ordered by client id, next cursor."""
        found = await self.broker.presence_get(channel)
        ordered = sorted(found)
        if cursor is not None:
            ordered = [c for c in ordered if c > cursor]
        page = ordered[:limit]
        reply: dict[str, Any] = {
            "count": len(found),
            "members": [found[c] for c in page],
        }
        if len(ordered) > limit:
            reply["cursor"] = page[-1]
        return reply

    # --- the periodic sweep -------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.presence_sync)
            try:
                await self.sweep()
            except Exception:
                log.exception("the presence sweep failed")
