"""Channel namespaces: per-pattern options and who may subscribe or publish.

A channel name has 1..200 characters of ``A-Z a-z 0-9 _ - . : @ / = + #``
(:func:`monument_ws.protocol.check_channel`). Options are chosen by the first
matching glob pattern, in the order namespaces were declared (declare the
specific ones first); a channel no pattern matches gets :data:`DEFAULT`.

Policies for ``subscribe`` and ``publish``:

* ``"anyone"`` -- every socket;
* ``"subscribers"`` -- sockets subscribed to the channel (for ``publish``);
* ``"nobody"`` -- no socket (the server can always publish);
* a function ``policy(socket, channel, query) -> bool`` (or awaitable): e.g.
  check a room password in ``query`` or a user in ``socket.state``.

By default anyone may subscribe and no client may publish.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
from collections.abc import Iterable
from typing import Any

from ..config import DEFAULT_CHANNEL as DEFAULT
from ..config import ChannelOptions, Policy
from ..connection.socket import Socket


class Namespaces:
    """Pattern → options, first match wins."""

    def __init__(self, entries: Iterable[tuple[str, ChannelOptions]] = ()) -> None:
        self._entries: list[tuple[str, ChannelOptions]] = list(entries)

    def add(
        self, pattern: str, options: ChannelOptions | None = None, **settings: Any
    ) -> ChannelOptions:
        """Declare a namespace: ``namespaces.add("chat:*", publish="anyone", presence=True)``."""
        chosen = dataclasses.replace(options or DEFAULT, **settings)
        self._entries.append((pattern, chosen))
        return chosen

    def options(self, channel: str) -> ChannelOptions:
        for pattern, options in self._entries:
            if fnmatch.fnmatchcase(channel, pattern):
                return options
        return DEFAULT

    def namespace(self, channel: str) -> str:
        """The pattern that configures ``channel`` (a bounded label for metrics), or ``default``."""
        for pattern, _ in self._entries:
            if fnmatch.fnmatchcase(channel, pattern):
                return pattern
        return "default"


async def allows(
    policy: Policy, socket: Socket, channel: str, query: Any, *, subscribed: bool
) -> bool:
    """Evaluate ``policy`` for ``socket`` on ``channel``."""
    if policy == "anyone":
        return True
    if policy == "nobody":
        return False
    if policy == "subscribers":
        return subscribed
    verdict = policy(socket, channel, query)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    return bool(verdict)
