"""Every lifecycle event monument_ws emits on the application's bus, in one place.

They live under reserved prefixes (``ws:``, ``client.``), so a socket can never
fire one. Receivers get the keyword arguments listed here (plus ``data=None``)::

    @bus.on(signals.SOCKET_CONNECTED)
    async def hello(event, *, socket, **_):
        log.info("%s connected", socket.client_id)

A receiver's exception is logged and does not affect the socket (:func:`announce`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .bus import EventBus

log = logging.getLogger("monument_ws")

#: A socket finished its upgrade and got its ``ws:welcome``. Keywords: ``socket``.
SOCKET_CONNECTED: Final = "ws:connected"

#: A socket closed; its running handlers were cancelled and its pending data
#: waits removed. Keywords: ``socket``, ``code``: the close code actually used -- the
#: server's when it closed first (4409 kicked, 1009 a frame too big, 1008, ...), the
#: client's when the client did, 1006 only when the connection dropped without one.
SOCKET_CLOSED: Final = "ws:closed"

#: A socket subscribed to a channel (after its subscribe reply). Keywords: ``socket``, ``channel``.
CHANNEL_SUBSCRIBED: Final = "ws:subscribed"

#: A socket left a channel (ws:unsubscribe or closing). Keywords: ``socket``, ``channel``.
CHANNEL_UNSUBSCRIBED: Final = "ws:unsubscribed"

#: A channel got its first subscriber on this process (super-scaled-sockets' onChannelOpen),
#: emitted once the process receives its publications. Keywords: ``channel``. Emitted once
#: per transition per process, reserved ``$user:``/``$session:`` channels included.
CHANNEL_OPENED: Final = "ws:channel-opened"

#: A channel lost its last subscriber on this process (onChannelClose): it unsubscribed, was
#: revoked, closed its socket or was kicked. Keywords: ``channel``. Once per transition.
CHANNEL_CLOSED: Final = "ws:channel-closed"

#: The plugs folder was (re)loaded and its new table swapped in. Keywords:
#: ``report`` (:class:`monument_ws.server.plugs.Report`: events, added, changed, removed, errors).
PLUGS_RELOADED: Final = "ws:plugs-reloaded"

#: A member joined a presence channel (its first socket there subscribed). Keywords:
#: ``channel``, ``client`` (the member record: client_id, user, label, meta, state,
#: first_seen, last_seen). Each presence transition is emitted exactly once across
#: processes (see :mod:`monument_ws.channels.presence`).
PRESENCE_CONNECTED: Final = "client.connected"

#: A member's last socket closed, or it went silent longer than ``presence_disconnect``.
#: Keywords: ``channel``, ``client``.
PRESENCE_DISCONNECTED: Final = "client.disconnected"

#: A disconnected member came back (subscribed again, or was heard from). Keywords:
#: ``channel``, ``client``.
PRESENCE_RECONNECTED: Final = "client.reconnected"

#: A member unsubscribed, or stayed disconnected longer than ``presence_removal``.
#: Keywords: ``channel``, ``client`` (its last record, with state ``removed``).
PRESENCE_REMOVED: Final = "client.removed"

#: A send to a socket failed (monument's ``error:ws``). Keywords: ``socket``, ``reason`` and
#: ``error`` (an exception saying what happened). ``reason`` is ``"closed"`` (the socket takes
#: no more frames: it closed, or its connection was lost; once per socket), ``"slow_consumer"``
#: (its send buffer overflowed and it is being closed with 4008; once per socket, and no
#: ``"closed"`` follows) or ``"encoding"`` (``socket.send(event, data)`` got data JSON cannot
#: hold, or a handler answered with such data: ``error`` is the TypeError; once per such
#: frame). Emitted from a task of its own: the code that sent never waits for it and never
#: gets an exception from it.
SEND_FAILED: Final = "error:ws"

#: Event prefixes a socket may never trigger: protocol commands, lifecycle
#: events, HTTP routes, server and error events, presence events.
RESERVED_PREFIXES: Final = ("ws:", "route:", "server:", "error:", "client.")


async def announce(bus: EventBus, event: str, **keywords: Any) -> None:
    """Emit ``event`` to its receivers in connection order. A receiver's exception is logged,
    never raised to the caller, so the socket or channel it was about is unaffected; the
    receivers after it are not called for this emit."""
    try:
        await bus.emit(event, **keywords)
    except Exception:
        log.exception("a receiver of %s failed", event)
