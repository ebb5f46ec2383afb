"""``run``'s listening socket: connections per client address, counted from accept.

``max_sockets_per_ip`` counts upgraded sockets only, and ``header_timeout`` closes a connection
whose request head does not come, but an address opening connections faster than that could
still hold any number of file descriptors. asyncio takes each connection through the listening
socket's ``accept()``; :class:`Listener` counts them there, per peer address, and closes one
beyond ``max_connections_per_ip`` at once, before aiohttp sees it. Each accepted socket gives
its count back when asyncio closes it. Nothing on the data path is wrapped, so reads and
writes cost what they did. The peer is the TCP peer: behind a proxy, every connection is the
proxy's (``trusted_proxies`` does not apply before a request is read).
"""

from __future__ import annotations

import logging
import socket

log = logging.getLogger("monument_ws")


class PerAddress:
    """Open connections by peer address, up to ``limit`` each (only open ones are kept)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}
        #: connections closed at accept because their address had ``limit`` open
        self.refused = 0
        self._told: set[str] = set()  # addresses at the limit whose refusal was logged

    def hold(self, address: str) -> bool:
        count = self.open.get(address, 0)
        if count < self.limit:
            self.open[address] = count + 1
            return True
        self.refused += 1
        if address not in self._told:  # once per episode at the limit, not per connection
            self._told.add(address)
            log.warning(
                "refused (connections_per_ip): %s already has %d connections open",
                address,
                self.limit,
            )
        return False

    def release(self, address: str) -> None:
        count = self.open[address] - 1
        if count:
            self.open[address] = count
        else:
            del self.open[address]
        self._told.discard(address)


class Listener(socket.socket):
    """A listening TCP socket whose ``accept()`` admits at most ``counts.limit`` open
    connections per peer address; a refused one is closed at once."""

    counts: PerAddress

    def accept(self) -> tuple[socket.socket, object]:
        fd, peer = self._accept()  # type: ignore[attr-defined]
        address = str(peer[0])
        if not self.counts.hold(address):
            socket.close(fd)
            # asyncio's accept loop takes this as "nothing more now" and is called again.
            raise ConnectionAbortedError(f"{address} has too many connections open")
        conn = Counted(self.family, self.type, self.proto, fileno=fd)
        conn.counted = (self.counts, address)
        return conn, peer


class Counted(socket.socket):
    """An accepted connection that gives its address's count back when it is closed. Slotted:
    a ``__dict__`` would cost every open connection a few hundred bytes."""

    __slots__ = ("counted",)
    counted: tuple[PerAddress, str] | None

    def close(self) -> None:
        counted, self.counted = self.counted, None
        if counted is not None:
            counted[0].release(counted[1])
        super().close()


def listen(host: str, port: int, limit: int, *, reuse_port: bool) -> Listener:
    """A bound :class:`Listener` on ``host:port`` (SO_REUSEADDR; SO_REUSEPORT for workers),
    bound like :func:`~monument_ws.cli.listening.probe_port` probes; aiohttp starts it
    listening. Raises the OSError of a failed bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = Listener(family, socket.SOCK_STREAM)
    sock.counts = PerAddress(limit)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
