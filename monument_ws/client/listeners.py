"""Who sees what crosses the socket: event listeners, raw frame listeners, frame middleware.

A listener or a hook that raises never breaks the connection: a listener's error is
logged and the next listener runs; what an incoming hook's error does to its frame is
the dispatcher's business (:mod:`.dispatch`); an outgoing hook's error is raised by the
``tell`` or ``call`` that sent the frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from .tasks import maybe_await

# __package__, not __name__: the whole client logs as monument_ws.client.
log = logging.getLogger(__package__)

Listener = Callable[[Any], Any]
#: A frame middleware hook: sees the decoded frame, returns a replacement or None (keep it).
FrameHook = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class Listeners:
    def __init__(self) -> None:
        self._events: dict[str, list[Listener]] = {}
        self._raw: list[Listener] = []
        self._incoming: list[FrameHook] = []
        self._outgoing: list[FrameHook] = []

    def on(self, event: str, listener: Listener) -> Listener:
        self._events.setdefault(event, []).append(listener)
        return listener

    def off(self, event: str, listener: Listener) -> None:
        listeners = self._events.get(event, [])
        if listener in listeners:
            listeners.remove(listener)

    def listen(self, listener: Listener) -> None:
        self._raw.append(listener)

    def incoming(self, hook: FrameHook) -> FrameHook:
        self._incoming.append(hook)
        return hook

    def outgoing(self, hook: FrameHook) -> FrameHook:
        self._outgoing.append(hook)
        return hook

    async def emit(self, event: str, data: Any) -> None:
        """Run the listeners of ``event`` in order, one at a time; the reader awaits this, so
        they all finish before the next frame is read."""
        for listener in list(self._events.get(event, ())):
            try:
                await maybe_await(listener(data))
            except Exception:
                log.exception("a listener of %r failed", event)

    def show_raw(self, frame: Any) -> None:
        for listener in self._raw:
            try:
                listener(frame)
            except Exception:
                log.exception("a raw listener failed")

    @property
    def incoming_hooks(self) -> tuple[FrameHook, ...]:
        return tuple(self._incoming)

    def hook_outgoing(self, frame: bytes) -> bytes:
        """The encoded frame as the outgoing hooks leave it (the same bytes when there are
        none); raises what a hook raises."""
        if not self._outgoing:
            return frame
        obj = orjson.loads(frame)
        for hook in self._outgoing:
            obj = hooked(hook, obj)
        return orjson.dumps(obj)


def hooked(hook: FrameHook, frame: dict[str, Any]) -> dict[str, Any]:
    """The frame ``hook`` returns, or ``frame`` when it returns None."""
    result = hook(frame)
    if result is None:
        return frame
    if not isinstance(result, dict):
        raise TypeError("a frame hook must return a dict or None")
    return result
