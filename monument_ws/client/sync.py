"""SYNC on the client: the current object of each event sent as ``"sync": "full" | "patch"``.

The arithmetic is :func:`monument_ws.protocol.patches.apply`; this keeps its results.
Listeners, calls and streams receive the whole current object, never the patch. The
object is shared with them: treat it as read-only (a patch produces a new object, it
never changes the old one in place).
"""

from __future__ import annotations

from typing import Any

from ..protocol import patches


class Synced:
    def __init__(self) -> None:
        self._objects: dict[str, Any] = {}  # event -> its current object

    def get(self, event: str, default: Any = None) -> Any:
        return self._objects.get(event, default)

    def apply(self, event: str, mode: object, data: Any) -> Any:
        """The event's object after a SYNC frame of ``mode`` carrying ``data``.

        Raises :class:`~monument_ws.protocol.patches.SyncError` when the frame does not
        apply; the event's object is then forgotten, so only a ``full`` frame brings it back.
        """
        try:
            current = patches.apply(self._objects.get(event), mode, data)
        except patches.SyncError:
            self._objects.pop(event, None)
            raise
        self._objects[event] = current
        return current
