"""SYNC: send a big object once, then only RFC 6902 JSON Patches of what changed (Sans-I/O).

Wire form (docs/protocol.md)::

    {"event": "board", "sync": "full", "data": {...the object...}}
    {"event": "board", "sync": "patch", "data": [{"op": "replace", "path": "/a", "value": 2}]}

plus ``id`` (and ``more``) when the frame is part of a reply. The server keeps,
per socket, the last object sent for each event (:class:`SyncState`). It sends
the whole object the first time, whenever the patch would not be smaller, and
whenever it no longer remembers what the client has: memory is bounded per
socket by ``limit`` bytes of encoded objects, least recently used events are
forgotten first, and an object larger than the whole limit is never remembered
(it always goes in full).

Correctness rests on one ordering guarantee: the frames of one socket arrive
in the order they were queued, and every SYNC frame the server computes is
queued before the next one is computed. Clients keep the current object per
event and apply each frame with :func:`apply`; a ``full`` frame replaces
whatever they had, which is how a new connection (whose server state starts
empty) re-synchronises.

This module imports only jsonpatch and orjson, so the Python client uses it too.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final, Literal

import jsonpatch
import orjson

Mode = Literal["full", "patch"]

FULL: Final = "full"
PATCH: Final = "patch"


class SyncError(ValueError):
    """A SYNC frame that cannot be applied (unknown mode, or a patch that does not fit)."""


class SyncState:
    """What one socket was last sent per SYNC event, within ``limit`` bytes."""

    __slots__ = ("_last", "_size", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._last: OrderedDict[str, bytes] = OrderedDict()  # event -> encoded object
        self._size = 0

    def __len__(self) -> int:
        return len(self._last)

    @property
    def size(self) -> int:
        """Bytes of encoded objects remembered now; never more than ``limit``."""
        return self._size

    def frame_data(self, event: str, value: Any) -> tuple[Mode, Any]:
        """``("full", value)`` or ``("patch", ops)``, whichever is smaller; remembers ``value``.

        Raises TypeError (before remembering anything) for a value JSON cannot hold.
        """
        encoded = orjson.dumps(value)
        previous = self._forget(event)
        if len(encoded) <= self.limit:
            self._last[event] = encoded
            self._size += len(encoded)
            while self._size > self.limit:
                _, dropped = self._last.popitem(last=False)
                self._size -= len(dropped)
        if previous is None:
            return FULL, value
        old = orjson.loads(previous)
        if not (isinstance(old, dict | list) and isinstance(value, dict | list)):
            return FULL, value
        ops = jsonpatch.make_patch(old, value).patch
        if len(orjson.dumps(ops)) < len(encoded):
            return PATCH, ops
        return FULL, value

    def _forget(self, event: str) -> bytes | None:
        previous = self._last.pop(event, None)
        if previous is not None:
            self._size -= len(previous)
        return previous


def apply(current: Any, mode: object, data: Any) -> Any:
    """The client side: the object after a ``full`` or ``patch`` SYNC frame.

    ``current`` is not modified (a patched copy is returned). Raises
    :class:`SyncError` when the frame cannot be applied to ``current``.
    """
    if mode == FULL:
        return data
    if mode == PATCH:
        try:
            return jsonpatch.apply_patch(current, data)
        except Exception as exc:  # a malformed patch fails in many ways: all mean "does not apply"
            raise SyncError(f"the patch does not apply: {exc}") from None
    raise SyncError(f"unknown sync mode {mode!r}")
