"""Every lifecycle event monument_ws emits on the application's bus, in one place.

They live under the reserved ``ws:`` prefix, so a socket can never fire one.
Receivers get the keyword arguments listed here (plus ``data=None``)::

    @bus.on(signals.SOCKET_CONNECTED)
    async def hello(event, *, socket, **_):
        log.info("%s connected", socket.client_id)

A receiver's exception is logged and does not affect the socket.
"""

from __future__ import annotations

from typing import Final

#: A socket finished its upgrade and got its ``ws:welcome``. Keywords: ``socket``.
SOCKET_CONNECTED: Final = "ws:connected"

#: A socket closed; its running handlers were cancelled and its pending data
#: waits removed. Keywords: ``socket``, ``code`` (close code or None).
SOCKET_CLOSED: Final = "ws:closed"

#: A socket subscribed to a channel (after its subscribe reply). Keywords: ``socket``, ``channel``.
CHANNEL_SUBSCRIBED: Final = "ws:subscribed"

#: A socket left a channel (ws:unsubscribe or closing). Keywords: ``socket``, ``channel``.
CHANNEL_UNSUBSCRIBED: Final = "ws:unsubscribed"

#: The plugs folder was (re)loaded and its new table swapped in. Keywords:
#: ``report`` (:class:`monument_ws.server.plugs.Report`: events, added, changed, removed, errors).
PLUGS_RELOADED: Final = "ws:plugs-reloaded"

#: Event prefixes a socket may never trigger: protocol commands, lifecycle
#: events, HTTP routes, server and error events, presence events.
RESERVED_PREFIXES: Final = ("ws:", "route:", "server:", "error:", "client.")
