"""Frame middleware: hooks on every incoming and outgoing frame, and raw listeners.

::

    @ws.middleware.outgoing
    def stamp(frame, socket):
        frame["dt"] = time.time()          # like @owlmeans/socket's prepare()
        frame["sender"] = "node-1"

    @ws.middleware.incoming
    def no_admin(frame, socket):
        if frame["event"].startswith("admin:"):
            raise Forbidden("admin events are not accepted on sockets")

    ws.middleware.listen(lambda socket, message: audit.append(message))

Guarantees:

* **Incoming hooks** ``hook(frame: dict, socket) -> dict | None`` see every
  valid frame (after the protocol checks and the rate limit, before the
  authentication check and routing), in registration order. Returning a dict
  replaces the frame (it is validated again); None keeps it. Raising a
  :class:`~monument_ws.protocol.errors.MonumentWSError` refuses the frame: it is not
  routed and the socket gets ``ws:error`` with that error's code and message
  (and the frame's ``id`` when it had one) -- even without an id, because the
  refusal is about the frame itself. Any other exception refuses it as
  ``internal`` and is logged.
* **Outgoing hooks** ``hook(frame: dict, socket | None) -> dict | None`` see
  every frame before it is written: replies, errors, pushes, server calls, the
  welcome. A refusal (a MonumentWSError) drops the frame, except that a frame
  answering a request ``id`` is replaced by a ``ws:error`` with that id and the
  hook's code, so every request still gets exactly one answer. Frames a hook
  creates this way do not pass through the hooks again.
* **Fan-out keeps encode-once.** A frame written to many sockets (a channel
  publication, live or replayed, a join/leave push, a broadcast) passes
  through the outgoing hooks **once per process**, with ``socket=None``; the
  result is encoded once and the same bytes go to every local subscriber.
  Per-recipient changes therefore cannot be made to fan-out frames -- that
  would be one encode per socket, the cost encode-once avoids. With no hooks
  nothing is decoded; with hooks every outgoing frame costs one JSON decode
  and one encode (see docs/benchmarks.md).
* **Listeners** ``listener(socket, message)`` see every incoming text frame
  before anything else: the parsed object, or the raw text when it is not
  valid JSON. They cannot change or refuse frames; an exception in one is
  logged and the others still run.

Hooks are synchronous: they run inline in the socket's read loop and in the
writers, so they must be quick; do slow work (I/O) in a handler instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from .. import protocol
from ..protocol.errors import MonumentWSError
from ..protocol.frames import ErrorCode

if TYPE_CHECKING:
    from .socket import Socket

log = logging.getLogger("monument_ws")

Hook = Callable[[dict[str, Any], "Socket | None"], "dict[str, Any] | None"]
Listener = Callable[["Socket", Any], Any]


class Middleware:
    """The hooks and listeners of one application (``ws.middleware``)."""

    def __init__(self) -> None:
        self.incoming_hooks: list[Hook] = []
        self.outgoing_hooks: list[Hook] = []
        self.listeners: list[Listener] = []
        #: frames refused by a hook, and hooks that failed unexpectedly
        self.refused = 0
        self.failed = 0

    def incoming(self, hook: Hook) -> Hook:
        """Register an incoming hook (usable as a decorator)."""
        self.incoming_hooks.append(hook)
        return hook

    def outgoing(self, hook: Hook) -> Hook:
        """Register an outgoing hook (usable as a decorator)."""
        self.outgoing_hooks.append(hook)
        return hook

    def listen(self, listener: Listener) -> Listener:
        """Register a raw listener of every incoming frame (usable as a decorator)."""
        self.listeners.append(listener)
        return listener

    def show(self, socket: Socket, text: str | bytes) -> None:
        """Hand one incoming text frame to every listener (parsed when it is JSON)."""
        try:
            message: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = text.decode(errors="replace") if isinstance(text, bytes) else text
        for listener in self.listeners:
            try:
                listener(socket, message)
            except Exception:
                log.exception("a frame listener failed")

    def run_incoming(
        self, frame: protocol.Frame, socket: Socket
    ) -> protocol.Frame | protocol.Invalid:
        """The frame after every incoming hook, or the refusal to send back."""
        obj = frame.raw
        changed = False
        try:
            for hook in self.incoming_hooks:
                result = hook(obj, socket)
                if result is not None:
                    obj, changed = result, True
        except MonumentWSError as exc:
            self.refused += 1
            return protocol.Invalid(exc.code, exc.message, frame.id)
        except Exception:
            self.failed += 1
            log.exception("an incoming frame hook failed")
            return protocol.Invalid(ErrorCode.INTERNAL, "internal error", frame.id)
        return protocol.validate(obj) if changed else frame

    def run_outgoing(self, frame: bytes, socket: Socket | None) -> bytes | None:
        """The encoded frame after every outgoing hook; None when it is dropped."""
        obj = orjson.loads(frame)
        try:
            for hook in self.outgoing_hooks:
                result = hook(obj, socket)
                if result is not None:
                    obj = result
            return orjson.dumps(obj)
        except MonumentWSError as exc:
            self.refused += 1
            return _answer_instead(obj, exc.code, exc.message)
        except Exception:
            self.failed += 1
            log.exception("an outgoing frame hook failed")
            return _answer_instead(obj, ErrorCode.INTERNAL, "internal error")


def _answer_instead(obj: Any, code: ErrorCode, message: str) -> bytes | None:
    """A refused reply becomes an error with its id (one answer per request); others drop."""
    request_id = obj.get("id") if isinstance(obj, dict) else None
    if request_id is None:
        return None
    return protocol.error(code, message, request_id)
