"""Answers to the server's calls (``{"event": …, "call": n}``): one handler per event.

Each call runs in its own task, so a slow handler never holds up the reader; its
answer goes through the outbox like any frame, and is dropped if the outbox refuses
it (full, or the answer too large): the server's call then times out.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from .. import protocol
from ..protocol.errors import InternalError, MonumentWSError, NotFound
from .outbox import Outbox
from .tasks import maybe_await

# __package__, not __name__: the whole client logs as monument_ws.client.
log = logging.getLogger(__package__)


class Performers:
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._handlers: dict[str, Callable[[Any], Any]] = {}

    def add(self, event: str, handler: Callable[[Any], Any]) -> None:
        self._handlers[event] = handler

    async def perform(self, frame: dict[str, Any]) -> None:
        """Run the handler of the call in ``frame`` and send its result, or its error: a
        MonumentWSError keeps its code, anything else is ``internal``, no handler
        ``not_found``."""
        number, event = frame.get("call"), frame.get("event")
        handler = self._handlers.get(event) if isinstance(event, str) else None
        call = number if isinstance(number, int) else None
        try:
            if handler is None:
                raise NotFound(f"this client performs no {event!r}")
            answer = protocol.encode(
                {
                    "event": protocol.RESULT_EVENT,
                    "call": number,
                    "data": await maybe_await(handler(frame.get("data"))),
                }
            )
        except MonumentWSError as exc:
            answer = protocol.error(exc.code, exc.message, call=call)
        except Exception:
            log.exception("performing %r failed", event)
            answer = protocol.error(InternalError.code, "internal error", call=call)
        with contextlib.suppress(MonumentWSError):
            self._outbox.put(answer)
