"""SYNC: send a big object once, then only RFC 6902 JSON Patches of what changed.

Wire form (design.md): ``{"event": ..., "sync": "full", "data": <object>}``
the first time, then ``{"event": ..., "sync": "patch", "data": <patch>}``.
The server keeps the last object sent per (socket, event) -- at most
``MAX_EVENTS`` events per socket, least recently used dropped first -- and
sends the full object again whenever the patch would be larger, or when it
no longer remembers what the client has. Clients keep the current object per
event and apply patches to it (:func:`apply`).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any, Final

import jsonpatch
import orjson

MAX_EVENTS: Final = 64


class SyncState:
    """What one socket was last sent per SYNC event."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: OrderedDict[str, Any] = OrderedDict()

    def frame_data(self, event: str, value: Any) -> tuple[str, Any]:
        """``("full", value)`` or ``("patch", ops)``, whichever is smaller; remembers ``value``."""
        previous = self._last.pop(event, _MISSING)
        self._last[event] = copy.deepcopy(value)
        while len(self._last) > MAX_EVENTS:
            self._last.popitem(last=False)
        if previous is _MISSING or not (
            isinstance(previous, dict | list) and isinstance(value, dict | list)
        ):
            return "full", value
        ops = jsonpatch.make_patch(previous, value).patch
        if len(orjson.dumps(ops)) < len(orjson.dumps(value)):
            return "patch", ops
        return "full", value

    def forget(self, event: str) -> None:
        self._last.pop(event, None)


def apply(current: Any, mode: str, data: Any) -> Any:
    """The client side: the object after a ``full`` or ``patch`` SYNC frame."""
    if mode == "full":
        return data
    if mode == "patch":
        return jsonpatch.apply_patch(current, data)
    raise ValueError(f"unknown sync mode {mode!r}")


_MISSING: Final = object()
