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
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..connection.socket import Socket

PolicyFunction = Callable[["Socket", str, Any], "bool | Awaitable[bool]"]
Policy = Literal["anyone", "subscribers", "nobody"] | PolicyFunction

_NAMED = ("anyone", "subscribers", "nobody")


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """What a namespace's channels do."""

    #: publications kept per channel for recovery (0: no history, no recovery)
    history_size: int = 100
    #: seconds a publication stays in history
    history_ttl: float = 300.0
    #: keep a member list (ws:presence)
    presence: bool = False
    #: push ws:join / ws:leave to subscribers when members come and go
    join_leave: bool = False
    #: who may subscribe from a socket
    subscribe: Policy = "anyone"
    #: who may publish from a socket (ws:publish)
    publish: Policy = "nobody"
    #: only sockets in the "authenticated" stage may subscribe
    authenticated: bool = False

    def __post_init__(self) -> None:
        for name in ("subscribe", "publish"):
            value = getattr(self, name)
            if not callable(value) and value not in _NAMED:
                raise ValueError(
                    f"{name} must be one of {', '.join(_NAMED)} or a function, got {value!r}"
                )
        if self.history_size < 0 or self.history_ttl < 0:
            raise ValueError("history_size and history_ttl must not be negative")


DEFAULT = ChannelOptions()


def parse_namespaces(value: object) -> tuple[tuple[str, ChannelOptions], ...]:
    """Config parser: ``{"chat:*": {"publish": "anyone", "history_size": 50}, ...}``."""
    if isinstance(value, tuple) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return value
    if isinstance(value, str):
        import json

        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of pattern to options, got {value!r}")
    known = {f.name for f in dataclasses.fields(ChannelOptions)}
    out = []
    for pattern, options in value.items():
        if isinstance(options, ChannelOptions):
            out.append((str(pattern), options))
            continue
        if not isinstance(options, Mapping):
            raise ValueError(f"options of {pattern!r} must be a mapping")
        unknown = set(options) - known
        if unknown:
            raise ValueError(
                f"unknown channel options {sorted(unknown)} for {pattern!r}; known: {sorted(known)}"
            )
        out.append((str(pattern), ChannelOptions(**options)))
    return tuple(out)


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
