"""How much one read of a socket's connection asks the kernel for.

asyncio's selector transports read with ``sock.recv(max_size)``, ``max_size``
being 256 KiB: CPython allocates a 256 KiB buffer for every read, then shrinks
it to what arrived. That size is above glibc's ``malloc`` threshold for
``mmap`` (128 KiB until a large block is freed), so each read of a small
frame can cost an ``mmap``, an ``mremap``, a ``munmap`` and the page faults
of a fresh mapping: measured with ``strace -c`` under 1,000 sockets of small
requests, five system calls per request instead of two, and more than half of
the server's CPU time in the kernel. Whether a process is in that state
depends on its allocation history (glibc raises the threshold when a large
mapped block is freed), so the same server was fast in one run and half as
fast in the next. Asking for 64 KiB keeps every read buffer on the heap; a
larger message takes a few more reads.

:func:`small_reads` sets the read size of one connection. It touches
``max_size``, an attribute of asyncio's selector transports since Python 3.4
(``tests/test_reads.py`` checks that the transport still reads with it); a
transport without one (TLS, uvloop) reads its own way and is left alone.
"""

from __future__ import annotations

import asyncio

__all__ = ["READ_SIZE", "small_reads"]

#: Bytes one read asks for: below glibc's smallest mmap threshold (128 KiB).
READ_SIZE = 64 * 1024


def small_reads(transport: asyncio.BaseTransport | None) -> None:
    """Make each read of ``transport`` ask for at most :data:`READ_SIZE` bytes."""
    size = getattr(transport, "max_size", None)
    if type(size) is int and size > READ_SIZE:
        transport.max_size = READ_SIZE  # type: ignore[union-attr]
