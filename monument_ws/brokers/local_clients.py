"""Which client ids this process holds a socket of: the local half of every broker's client registry.

A client may have several sockets on one process (tabs sharing a resumed
``client_id``); it is held from its first socket until its last one leaves, so
a broker writes to its shared registry only on those two transitions.
"""

from __future__ import annotations

from collections.abc import Iterator


class LocalClients:
    """Sockets per client id on this process."""

    def __init__(self) -> None:
        self._sockets: dict[str, int] = {}

    def add(self, client_id: str) -> bool:
        """Count one more socket of ``client_id``; True when it is the client's first here."""
        count = self._sockets[client_id] = self._sockets.get(client_id, 0) + 1
        return count == 1

    def remove(self, client_id: str) -> bool:
        """Count one socket of ``client_id`` less; True when none is left here (also for a
        client that was never added)."""
        count = self._sockets.get(client_id, 0) - 1
        if count > 0:
            self._sockets[client_id] = count
            return False
        self._sockets.pop(client_id, None)
        return True

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._sockets

    def __iter__(self) -> Iterator[str]:
        """The held client ids, as a snapshot: the caller may await while iterating."""
        return iter(list(self._sockets))

    def __len__(self) -> int:
        return len(self._sockets)
