"""The Client's channel methods: subscribe, unsubscribe, publish and read a channel's history
(the work is done by :class:`~.channels.Channels`; see it for the guarantees)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .channels import Channels, Message, Subscription


class ChannelMethods:
    """A base of :class:`~monument_ws.client.Client`, which sets ``_channels``."""

    _channels: Channels

    async def subscribe(
        self,
        channel: str,
        handler: Callable[[Message], Any],
        *,
        query: Any = None,
        label: Any = None,
        meta: Any = None,
    ) -> Subscription:
        """Subscribe to ``channel``; ``handler(Message)`` gets each publication, in offset order.

        After every reconnect the client resubscribes by itself with ``since``,
        so missed publications are replayed (see :class:`Subscription`). ``label`` and
        ``meta`` describe this client in the channel's presence. Raises the server's error
        (e.g. Forbidden) if the subscription is refused.
        """
        subscription = Subscription(self, channel, handler, query, label=label, meta=meta)
        return await self._channels.subscribe(subscription)

    async def unsubscribe(self, channel: str) -> None:
        await self._channels.unsubscribe(channel)

    async def publish(
        self,
        channel: str,
        event: str,
        data: Any = None,
        *,
        exclude_self: bool = False,
        idempotency_key: str | None = None,
    ) -> int:
        """Publish to ``channel`` (where its namespace lets clients); returns the offset.
        ``exclude_self=True``: this client (its client id) does not get it, live or replayed.

        ``idempotency_key`` (1 to 64 characters, e.g. ``uuid4().hex`` made once per message):
        when a publish fails without an answer (``Timeout``, ``Unavailable``, a lost
        connection) it may still have been published; retrying with the same key publishes
        once and returns the first offset (the server remembers a key per channel for its
        ``idempotency_window``)."""
        return await self._channels.publish(channel, event, data, exclude_self, idempotency_key)

    async def history(
        self,
        channel: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int | None = None,
        epoch: str | None = None,
        query: Any = None,
    ) -> dict[str, Any]:
        """One page of ``channel``'s history window (the protocol's ``ws:history``):
        ``{"channel", "epoch", "offset", "publications": [{"event", "data", "offset"}, …],
        "more"}``, oldest first; the latest ``limit`` (server default 50, at most 100), or
        those ``before`` / ``after`` an offset. Go on with
        ``before=page["publications"][0]["offset"]`` (or ``after=`` the last one) and the
        first page's ``epoch`` while ``more``. ``query`` goes to the namespace's subscribe
        policy, as for :meth:`subscribe`; no subscription is needed. Raises the server's
        error (Forbidden, BadFrame)."""
        page = {"before": before, "after": after, "limit": limit, "epoch": epoch, "query": query}
        return await self._channels.history(channel, page)

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return self._channels.subscriptions
