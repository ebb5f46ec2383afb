"""The Client's methods about people rather than channels: who is in a channel (presence),
and what the server publishes to this client's own user and session (the reserved
``$user:`` / ``$session:`` channels; see :mod:`.channels`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .channels import Channels, Message


class People:
    """A base of :class:`~monument_ws.client.Client`, which sets ``_channels``."""

    _channels: Channels

    async def presence(
        self, channel: str, *, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        """One page of ``channel``'s members, ``{"count", "members", "cursor"?}`` (see the
        protocol's ``ws:presence``); pass ``cursor`` back for the next. Raises NotFound when
        its namespace keeps no presence."""
        return await self._channels.presence(channel, limit, cursor)

    def on_user(self, handler: Callable[[Message], Any]) -> Callable[[Message], Any]:
        """Call ``handler(Message)`` with every publication to this client's user channel
        (``$user:<id>``, joined by the server), in offset order; after a reconnect what was
        published meanwhile is recovered. Returns ``handler`` (a decorator too)."""
        self._channels.on_reserved("user", handler)
        return handler

    def on_session(self, handler: Callable[[Message], Any]) -> Callable[[Message], Any]:
        """:meth:`on_user` for this client's session channel (``$session:<hash>``)."""
        self._channels.on_reserved("session", handler)
        return handler

    def off_user(self, handler: Callable[[Message], Any]) -> None:
        self._channels.off_reserved("user", handler)

    def off_session(self, handler: Callable[[Message], Any]) -> None:
        self._channels.off_reserved("session", handler)
