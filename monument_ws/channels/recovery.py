"""Channel recovery: which local socket is subscribed to which channel, and subscribing one so
it gets what it missed.

Guarantees (docs/protocol.md):

* A subscriber that resubscribes with ``since`` gets what it missed from
  history (**at least once** within the history window; duplicates are
  recognisable by ``offset``) before its subscribe reply, and ``recovered``
  says whether the gap was filled.
* When the broker lost publications of a channel that history cannot supply
  (an outage), every local subscriber of the channel is asked to resubscribe
  (a ``ws:resubscribe`` push, :meth:`Subscriptions.resubscribe_all`).
* When the broker receives a channel's publication more than one offset above the last one
  it delivered (a persisted channel's publication committed by the store but never handed to
  the broker), the live subscribers are not served across the gap: they buffer, the missed
  publications are read from history (the store's) and sent, then the buffer is flushed --
  the recovery sequence below, run by the server for them -- so they get every publication
  once, in order. Only when history does not hold them are they asked to resubscribe.

For a persisted channel (a namespace with ``persist``) the position and what was missed come
from the store instead of the broker (the ``history`` given to :class:`Subscriptions`, see
:mod:`monument_ws.channels.durable`); the sequence below is the same.

Recovery sequence, so a publication landing during a resubscribe is
delivered exactly once: the socket is added to the channel live but with a
buffer; history since its offset is read and sent; the subscribe reply is
sent; then buffered publications newer than the last one sent are flushed and
the buffer removed. :meth:`Subscriptions.subscribe` does the first two steps
and returns the reply, the caller queues the reply, then
:meth:`Subscriptions.go_live` the last.

A publication that excludes a client id (its sender asked to be left out) is skipped for
that client's sockets in a replay and a flush too, as it is live: a sender that reconnects
with the same client id (``resume``) and ``since`` does not get it back (a ``ws:publish``
reply told it the offset). Other clients' replays include it.

Replayed and flushed publications go through the outgoing hooks with
``socket=None``, as live ones do (:func:`~monument_ws.channels.fanout.shared_frame`), into
the socket's send buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .. import protocol
from ..brokers.base import Broker, History, Publication
from ..bus import EventBus
from ..connection.middleware import Middleware
from ..connection.socket import Socket
from ..connection.stats import OUT_PUBLICATION
from ..signals import CHANNEL_CLOSED, CHANNEL_OPENED, announce
from .fanout import Members, shared_frame

log = logging.getLogger("monument_ws")


class Subscriptions:
    """The channels of this process's sockets. The broker is subscribed to a channel while it
    has at least one local subscriber.

    A channel's first local subscriber emits ``CHANNEL_OPENED`` once the broker is subscribed;
    its last one leaving (unsubscribe, revoke, close, kick) emits ``CHANNEL_CLOSED`` at once,
    so a close and a quick reopen are announced in that order. Once per transition of this
    process's table, reserved ``$`` channels too.
    """

    def __init__(
        self,
        broker: Broker,
        middleware: Middleware | None,
        bus: EventBus,
        history: Callable[[str, int, str | None], Awaitable[History]] | None = None,
    ) -> None:
        self._broker = broker
        #: where a subscribe reads a channel's position and what it missed: the broker's
        #: history, or for durable channels the store (:meth:`Durable.history
        #: <monument_ws.channels.durable.Durable.history>`)
        self._history = history or broker.history
        self._middleware = middleware
        self._bus = bus
        #: every channel's local subscribers, live or recovering (the table the fan-out reads)
        self.members: Members = {}
        self._of_socket: dict[Socket, set[str]] = {}
        #: channels whose broker subscription is being opened or closed: subscribers wait
        self._changing: dict[str, asyncio.Future[None]] = {}
        #: gaps being filled (:meth:`resubscribe_all` with ``after``)
        self._refills: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """How many sockets have at least one subscription."""
        return len(self._of_socket)

    def channels(self) -> dict[str, int]:
        """Channels with local subscribers, and how many."""
        return {channel: len(subs) for channel, subs in self.members.items()}

    def subscribers(self, channel: str) -> list[Socket]:
        """The local subscribers of ``channel``, live or recovering."""
        return list(self.members.get(channel, ()))

    def subscribed(self, socket: Socket, channel: str) -> bool:
        return channel in self._of_socket.get(socket, ())

    def of_socket(self, socket: Socket) -> set[str]:
        """The channels ``socket`` is subscribed to (a copy)."""
        return set(self._of_socket.get(socket, ()))

    async def subscribe(
        self, socket: Socket, channel: str, since: tuple[int, str] | None = None
    ) -> tuple[dict[str, Any], int]:
        """Subscribe ``socket``; with ``since=(offset, epoch)`` push what it missed first.

        Returns the subscribe reply ``{"channel", "offset", "epoch", "recovered"}``
        and the offset to pass to :meth:`go_live` once the reply is queued. Until
        then, live publications for ``socket`` are buffered. If reading history
        fails, ``socket`` is unsubscribed again and the error raised.
        """
        subs = await self._open(channel)
        subs[socket] = []
        self._of_socket.setdefault(socket, set()).add(channel)
        try:
            offset_asked, epoch_asked = since if since is not None else (0, None)
            history = await self._history(channel, offset_asked, epoch_asked)
            recovered = since is not None and history.complete
            last = history.offset
            if recovered:
                last = offset_asked
                for publication in history.publications:
                    self._send(socket, publication)
                    last = publication.offset
            reply = {
                "channel": channel,
                "offset": history.offset,
                "epoch": history.epoch,
                "recovered": recovered,
            }
            return reply, last
        except BaseException:
            await self.unsubscribe(socket, channel)
            raise

    async def _open(self, channel: str) -> dict[Socket, list[Publication] | None]:
        """The channel's subscriber table, subscribing the broker first when it has none.

        One change of a channel's broker subscription at a time: a subscriber that finds the
        channel being opened or closed (:meth:`unsubscribe`) waits for that first. The table
        exists only once the broker is subscribed and CHANNEL_OPENED announced; a broker
        subscribe that fails, or an opening abandoned half-way (its socket closed), leaves
        nothing behind -- the broker is told to forget the channel -- and the next subscriber
        tries again.
        """
        await self._settled(channel)
        subs = self.members.get(channel)
        if subs is not None:
            return subs
        opening = self._changing[channel] = asyncio.get_running_loop().create_future()
        try:
            await self._broker.subscribe(channel)
            await announce(self._bus, CHANNEL_OPENED, channel=channel)
            subs = self.members[channel] = {}
            return subs
        except BaseException:
            # A broker may remember a channel whose subscribe failed (to resubscribe it after
            # an outage): nothing here will ever unsubscribe it, so forget it now.
            with contextlib.suppress(Exception):
                await self._broker.unsubscribe(channel)
            raise
        finally:
            del self._changing[channel]
            opening.set_result(None)

    async def _settled(self, channel: str) -> None:
        """Wait until no opening or closing of ``channel`` is under way."""
        while True:
            changing = self._changing.get(channel)
            if changing is None:
                return
            await asyncio.shield(changing)

    def go_live(self, socket: Socket, channel: str, after: int) -> None:
        """End ``socket``'s recovery on ``channel``: flush buffered publications newer than ``after``."""
        subs = self.members.get(channel)
        if subs is None or socket not in subs:
            return
        buffer = subs[socket]
        subs[socket] = None
        for publication in buffer or ():
            if publication.offset > after:
                self._send(socket, publication)

    def _send(self, socket: Socket, publication: Publication) -> None:
        if publication.exclude is not None and publication.exclude == socket.client_id:
            return
        shared = shared_frame(publication.frame, self._middleware)
        if shared is None:
            return
        frame, wire = shared
        codec = socket.sender.codec
        if codec is not None:  # another wire format: this replay in it, by this socket's session
            wire = codec.encode(frame)
            if not wire:
                return
        socket.send_raw_nowait(frame, wire, OUT_PUBLICATION)

    async def unsubscribe(self, socket: Socket, channel: str) -> bool:
        """Remove ``socket`` from ``channel``; the last local subscriber unsubscribes the broker."""
        channels = self._of_socket.get(socket)
        if channels is None or channel not in channels:
            return False
        channels.discard(channel)
        if not channels:
            del self._of_socket[socket]
        subs = self.members.get(channel)
        if subs is not None:
            subs.pop(socket, None)
            if not subs:
                del self.members[channel]
                # A subscriber arriving now waits (_open) until the broker has let go, so its
                # broker subscribe cannot be undone by this unsubscribe.
                closing = self._changing[channel] = asyncio.get_running_loop().create_future()
                try:
                    await announce(self._bus, CHANNEL_CLOSED, channel=channel)
                    await self._broker.unsubscribe(channel)
                finally:
                    del self._changing[channel]
                    closing.set_result(None)
        return True

    async def leave_all(self, socket: Socket) -> list[str]:
        """Unsubscribe ``socket`` from every channel; returns the channels it left, sorted."""
        left = sorted(self._of_socket.get(socket, ()))
        for channel in left:
            await self.unsubscribe(socket, channel)
        return left

    def resubscribe_all(
        self, channel: str, restarted: str | None = None, after: int | None = None
    ) -> None:
        """Ask every local subscriber of ``channel`` to resubscribe (history could not fill a gap).

        With ``restarted`` (the channel's new epoch, whose publications the broker delivers
        next from offset 1) the push says ``"epoch": restarted, "offset": 0`` instead: the
        client takes that position and stays subscribed, so it gets every publication since
        the restart once, in order, without a subscribe that could miss some meanwhile.

        With ``after`` (the broker skipped offsets after ``after`` and delivers the next one
        right after this call) the live subscribers buffer from now on while the missed
        publications are read from history and sent to them (:meth:`_refill`); a subscriber
        is asked to resubscribe only if history does not hold them.
        """
        if after is not None and restarted is None:
            buffers: dict[Socket, list[Publication]] = {}
            subs = self.members.get(channel, {})
            for socket, buffer in subs.items():
                if buffer is None:  # live; one recovering already has its own buffer
                    buffers[socket] = subs[socket] = []
            if not buffers:
                return
            task = asyncio.get_running_loop().create_task(self._refill(channel, after, buffers))
            self._refills.add(task)
            task.add_done_callback(self._refills.discard)
            return
        self._push_resubscribe(self.subscribers(channel), channel, restarted)

    async def _refill(
        self, channel: str, after: int, buffers: dict[Socket, list[Publication]]
    ) -> None:
        """Send ``buffers``' sockets what ``channel`` published after ``after``, from history,
        then flush what they buffered meanwhile; a push to resubscribe where history lacks it."""
        history: History | None = None
        try:
            # The epoch of the publications delivered so far is the channel's current one
            # (a broker or store that lost it drops the connection first): read it, then read.
            position = await self._history(channel, after, None)
            history = await self._history(channel, after, position.epoch)
        except Exception as exc:  # the subscribers are asked to resubscribe instead
            log.warning("reading %r to fill a gap after %d failed: %s", channel, after, exc)
        subs = self.members.get(channel)
        if subs is None:
            return
        # Still subscribed, and not resubscribed meanwhile (a subscribe gives a new buffer).
        sockets = [socket for socket, buffer in buffers.items() if subs.get(socket) is buffer]
        if history is None or not history.complete:
            for socket in sockets:
                self.go_live(socket, channel, after)
            self._push_resubscribe(sockets, channel, None)
            return
        for socket in sockets:
            last = after
            for publication in history.publications:
                self._send(socket, publication)
                last = publication.offset
            self.go_live(socket, channel, last)

    def _push_resubscribe(self, sockets: list[Socket], channel: str, restarted: str | None) -> None:
        data: dict[str, Any] = {"channel": channel}
        if restarted is not None:
            data.update(epoch=restarted, offset=0)
        frame = protocol.push("ws:resubscribe", data)
        for socket in sockets:
            socket.send_raw_nowait(frame)
