"""The one hand-written piece of the WebSocket wire: a server's frame header (text or binary).

aiohttp writes frames one socket at a time; fan-out needs the frame as bytes,
built once and written to many transports. :func:`text_frame` builds it
(RFC 6455, FIN set, text opcode, unmasked, no extensions). Its contract is
pinned by ``tests/test_fanout.py``, which reads such frames back through
aiohttp's public client; with compression on, frames go through aiohttp's
writer instead (deflate state lives there).
"""

from __future__ import annotations


def text_frame(payload: bytes) -> bytes:
    """The whole RFC 6455 frame (FIN, text opcode, unmasked) carrying ``payload``.

    A server's frames are never masked, so the same bytes can be written to
    every subscriber's transport: fan-out frames and encodes a message once.
    """
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return bytes((0x81, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + length.to_bytes(8, "big") + payload


def binary_frame(payload: bytes) -> bytes:
    """The whole RFC 6455 frame (FIN, binary opcode, unmasked) carrying ``payload``: what a
    binary wire format (:mod:`monument_ws.protocol.codecs`) writes, shareable like a text frame."""
    length = len(payload)
    if length < 126:
        return bytes((0x82, length)) + payload
    if length < 65536:
        return bytes((0x82, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x82, 127)) + length.to_bytes(8, "big") + payload
