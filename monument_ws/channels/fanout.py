"""Fan-out: one frame written to many local sockets, encoded once.

Delivery guarantees (docs/protocol.md):

* A channel publication reaches each local subscriber **at most once live**,
  as the same encoded bytes (encoded once by the broker, however many
  subscribers there are), in the channel's offset order.
* Broadcast and join/leave pushes are at most once and not recoverable.
* A publication or broadcast naming an excluded client id (its sender asked to be left
  out, :attr:`~monument_ws.brokers.base.Publication.exclude`) skips that client's sockets;
  the others get the same shared bytes -- the skip is in the loop, nothing is re-encoded.
* A slow subscriber never slows the others: writes go to each socket's
  bounded send buffer; one that overflows is closed with 4008 (it can recover
  from history after reconnecting).

A frame for many sockets goes through the outgoing hooks once, with
``socket=None``, and is framed once (:func:`shared_frame`); a hook that drops
it drops it for every socket. Sockets of another wire format (an endpoint's codec,
:mod:`monument_ws.protocol.codecs`) get it encoded once per format and delivery
(:func:`coded`), not once per socket; while no such socket lives on the process, delivery
takes the native loop, which never looks for a codec. A subscriber still recovering
(:mod:`~monument_ws.channels.recovery`) does not get live publications
written: they are appended to its buffer.

Writes are gathered per loop turn: the first publication of a turn is written
at once; later ones in the same turn are gathered per socket
(:meth:`~monument_ws.connection.sender.Sender.gather`) and written in one go
when the turn ends -- one system call per socket for a burst.
"""

from __future__ import annotations

import asyncio
from typing import TypeAlias

from .. import protocol
from ..brokers.base import Publication
from ..connection.middleware import Middleware
from ..connection.socket import Socket
from ..connection.stats import OUT_PUBLICATION
from ..protocol.codecs import Codec, CodecSession

#: channel -> its local subscribers -> None when live, or the publications buffered while it
#: recovers. :mod:`~monument_ws.channels.recovery` adds and removes subscribers; the fan-out
#: only reads it and appends to buffers.
Members: TypeAlias = dict[str, dict[Socket, list[Publication] | None]]


#: One delivery's frame in each wire format its sockets speak, encoded at the first socket of
#: each (:func:`coded`); made only when a socket of another format is among the recipients.
Coded: TypeAlias = dict[Codec, bytes]


def coded(session: CodecSession, frame: bytes, cache: Coded) -> bytes:
    """``frame`` (through the hooks already) in the wire format of ``session``'s socket: encoded
    by its codec at most once per delivery, whatever number of sockets speak it; ``b""`` when
    the format drops it."""
    codec = session.codec
    wire = cache.get(codec)
    if wire is None:
        wire = cache[codec] = codec.encode_shared(frame)
    return wire


def shared_frame(frame: bytes, middleware: Middleware | None) -> tuple[bytes, bytes] | None:
    """A frame for many sockets: through the outgoing middleware once (``socket=None``),
    then framed once; None when a hook dropped it."""
    if middleware is not None and middleware.outgoing_hooks:
        hooked = middleware.run_outgoing(frame, None)
        if hooked is None:
            return None
        frame = hooked
    return frame, protocol.text_frame(frame)


class Fanout:
    """Writes publications and pushes to the local subscribers of a channel, or to given sockets."""

    def __init__(self, members: Members, middleware: Middleware | None) -> None:
        self._members = members
        self._middleware = middleware
        # Sockets gathering this loop turn's publications (see deliver); None between turns.
        self._gathering: list[Socket] | None = None
        # Live local sockets speaking another wire format (:meth:`joined`, :meth:`left`): while
        # there is none, delivery takes the native loop, which never looks for a codec.
        self._coded = 0

    def joined(self, socket: Socket) -> None:
        """``socket`` is live on this process (the hub calls it for every socket it adds)."""
        if socket.outbound.sender.codec is not None:
            self._coded += 1

    def left(self, socket: Socket) -> None:
        """``socket`` is gone (the hub calls it for every socket it removes)."""
        if socket.outbound.sender.codec is not None:
            self._coded -= 1

    def deliver(self, publication: Publication) -> None:
        """Write one publication to every local subscriber of its channel (same bytes to each)."""
        subs = self._members.get(publication.channel)
        if subs is None:
            return
        shared = shared_frame(publication.frame, self._middleware)
        if shared is None:
            return
        frame, wire = shared
        exclude = publication.exclude
        gathering = self._gathering
        first = gathering is None
        if gathering is None:
            gathering = self._gathering = []
            asyncio.get_running_loop().call_soon(self._flush)
        if self._coded:
            self._deliver_coded(publication, subs, frame, wire, first, gathering)
            return
        for socket, buffer in subs.items():
            if buffer is None:
                if exclude is not None and socket.client_id == exclude:
                    continue
                # The socket's way out, not its handler-facing wrappers: one call per subscriber.
                outbound = socket.outbound
                if not first and outbound.sender.gather():
                    gathering.append(socket)
                outbound.offer(frame, wire, OUT_PUBLICATION)
            else:
                buffer.append(publication)  # recovery skips an excluded one when it flushes

    def _deliver_coded(
        self,
        publication: Publication,
        subs: dict[Socket, list[Publication] | None],
        frame: bytes,
        wire: bytes,
        first: bool,
        gathering: list[Socket],
    ) -> None:
        """:meth:`deliver`'s loop while sockets of other wire formats live here: each of those
        gets the frame in its format, encoded once per format (:func:`coded`)."""
        exclude = publication.exclude
        cache: Coded = {}
        for socket, buffer in subs.items():
            if buffer is None:
                if exclude is not None and socket.client_id == exclude:
                    continue
                outbound = socket.outbound
                sender = outbound.sender
                # coded() inlined: this loop runs once per subscriber of every publication
                fmt = sender.wire_format
                theirs = wire if fmt is None else cache.get(fmt)
                if theirs is None:
                    assert fmt is not None
                    theirs = cache[fmt] = fmt.encode_shared(frame)
                if theirs:
                    if not first and sender.gather():
                        gathering.append(socket)
                    outbound.offer(frame, theirs, OUT_PUBLICATION)
            else:
                buffer.append(publication)

    def _flush(self) -> None:
        """End of a loop turn with publications: write what each socket gathered."""
        gathering, self._gathering = self._gathering, None
        for socket in gathering or ():
            socket.outbound.flush()

    def deliver_ephemeral(self, channel: str, frame: bytes) -> None:
        """A frame without offset (join/leave) to every local subscriber of ``channel``,
        recovering ones included; nothing (not even the hooks) when there is none."""
        subs = self._members.get(channel)
        if subs:
            self.send(list(subs), frame)

    def send(self, sockets: list[Socket], frame: bytes, exclude: str | None = None) -> None:
        """Write ``frame`` to each of ``sockets`` but those of client id ``exclude``, the same
        bytes to each."""
        shared = shared_frame(frame, self._middleware)
        if shared is None:
            return
        frame, wire = shared
        if not self._coded:
            for socket in sockets:
                if exclude is None or socket.client_id != exclude:
                    socket.outbound.offer(frame, wire)
            return
        cache: Coded = {}
        for socket in sockets:
            if exclude is None or socket.client_id != exclude:
                codec = socket.outbound.sender.codec
                theirs = wire if codec is None else coded(codec, frame, cache)
                if theirs:
                    socket.outbound.offer(frame, theirs)
