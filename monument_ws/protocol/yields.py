"""Typed yields: what a handler's yield (or return value) means, and the frame it becomes.

serverless-sockets gave every yield a type; here a plain value is a MESSAGE
and the other types are built with the helpers below. They work in every
handler -- a plug in the plugs folder or one registered with
``@ws.handler`` -- as a yielded item or as the return value::

    from monument_ws.protocol.yields import broadcast, sync, error

    async def handle(message, socket):
        yield "working"                          # a chunk of the reply
        yield broadcast({"joined": socket.client_id})   # to every socket
        yield sync(big_board)                    # whole object first, then patches
        if message.data is None:
            yield error("bad_frame", "send a move")  # ends the reply

The mapping to the protocol's frames, docs/protocol.md (``E`` is the request's event, ``7`` its id;
a request without id gets the same frames without ``id``/``more``, as pushes):

==================  ===================================================================
yield               frame(s)
==================  ===================================================================
plain value ``v``   ``{"event": E, "id": 7, "data": v, "more": true}`` (returned: the
                    reply ``{"event": E, "id": 7, "data": v}``)
``sync(obj)``       ``{"event": E, "id": 7, "sync": "full"|"patch", "data": ..., "more": true}``
                    (see :mod:`monument_ws.protocol.patches`)
``custom(n, v)``    ``{"event": E, "id": 7, "type": "custom_<n>", "data": v, "more": true}``
``broadcast(v)``    ``{"event": E, "data": v}`` pushed to every socket on every process,
                    the sender included (at most once); with ``channel=`` a channel
                    publication ``{"event", "channel", "data", "offset"}`` instead.
                    ``exclude_sender=True`` leaves out the sender's client id (every
                    socket of it, and its replays from history).
                    Nothing is added to the reply (returned: the reply is ``null``).
``error(code, m)``  ``{"event": "ws:error", "id": 7, "error": {"code": code,
                    "message": m}}`` -- the final answer; the generator is closed
``not_found(m)``    the same with code ``not_found`` (serverless-sockets' NOT_FOUND)
==================  ===================================================================

A stream ends with ``{"event": E, "id": 7, "end": true}`` unless an error
ended it. Any yield given ``event=`` naming another event is pushed to the
sender as its own frame (``{"event": other, ...}`` without ``id``) rather than
being part of the reply; SYNC state is kept per event name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .frames import ErrorCode


class YieldType(enum.Enum):
    """serverless-sockets' yield types; the value is the wire name where one is used."""

    MESSAGE = "message"
    BROADCAST = "broadcast"
    SYNC = "sync"
    ERROR = "error"
    NOT_FOUND = "not_found"
    CUSTOM_1 = "custom_1"
    CUSTOM_2 = "custom_2"
    CUSTOM_3 = "custom_3"
    CUSTOM_4 = "custom_4"
    CUSTOM_5 = "custom_5"

    @property
    def is_custom(self) -> bool:
        return self.value.startswith("custom_")


@dataclass(frozen=True, slots=True)
class Yield:
    """A typed yield. Build it with the helpers; ``Yield(YieldType.CUSTOM_2, data)`` also works."""

    type: YieldType
    data: Any = None
    event: str | None = None
    channel: str | None = None
    code: ErrorCode = ErrorCode.INTERNAL
    #: BROADCAST only: leave out the client that sent the request (its client id)
    exclude_sender: bool = False

    @property
    def message(self) -> str:
        """The error message of an ERROR or NOT_FOUND yield."""
        return str(self.data)


def message(data: Any, *, event: str | None = None) -> Yield:
    """A plain value, spelled out (only needed to send it under another ``event``)."""
    return Yield(YieldType.MESSAGE, data, event)


def broadcast(
    data: Any,
    *,
    event: str | None = None,
    channel: str | None = None,
    exclude_sender: bool = False,
) -> Yield:
    """Push ``data`` to every socket on every process, or publish it to ``channel``.

    ``exclude_sender=True`` leaves out the sender: every socket with its client id, on any
    process, also when it recovers ``channel`` from history (serverless-sockets'
    ``excludeSenderOnBroadcast``, per yield here). TypeError unless it is a bool.
    """
    if not isinstance(exclude_sender, bool):
        raise TypeError(f"exclude_sender must be True or False, got {exclude_sender!r}")
    return Yield(YieldType.BROADCAST, data, event, channel, exclude_sender=exclude_sender)


def sync(obj: Any, *, event: str | None = None) -> Yield:
    """Send ``obj`` as a SYNC: the whole object first, then RFC 6902 patches of the changes."""
    return Yield(YieldType.SYNC, obj, event)


def error(code: ErrorCode | str, message: str) -> Yield:
    """End the reply with an error frame of ``code`` (one of :class:`ErrorCode`)."""
    return Yield(YieldType.ERROR, message, code=ErrorCode(code))


def not_found(message: str = "not found") -> Yield:
    """End the reply with a ``not_found`` error."""
    return Yield(YieldType.NOT_FOUND, message, code=ErrorCode.NOT_FOUND)


def custom(number: int, data: Any, *, event: str | None = None) -> Yield:
    """A frame with ``"type": "custom_<number>"`` (1..5) for the client to interpret."""
    if isinstance(number, bool) or number not in range(1, 6):
        raise ValueError(f"custom yields are numbered 1 to 5, got {number!r}")
    return Yield(YieldType(f"custom_{number}"), data, event)
