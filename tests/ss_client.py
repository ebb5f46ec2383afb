"""A serverless-sockets client for the tests, written from the format docs/protocol.md documents.

It frames messages as serverless-sockets' browser client does (a 4-byte big-endian length of
the whole frame, the type byte, the event's length byte, the event, the JSON payload) and
rebuilds SYNC frames as its ``syncIncoming`` does: it keeps the last frame it holds per event
(first the request it sent), resizes it by the diff's first number keeping the old prefix, and
writes each run ``[position, bytes…]`` at its position. No monument_ws code is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

DEADLINE = 10.0

MESSAGE, BROADCAST, AUTH, SYNC, ERROR, NOT_FOUND = range(6)
CUSTOM_1 = 6


def encode(event: str, payload: Any = None, kind: int = MESSAGE) -> bytes:
    """One client frame."""
    name = event.encode()
    body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
    size = 6 + len(name) + len(body)
    return size.to_bytes(4, "big") + bytes((kind, len(name))) + name + body


@dataclass
class Message:
    """One decoded server frame (``raw`` its bytes; ``diff`` the SYNC diff it was rebuilt from)."""

    type: int
    event: str
    payload: Any
    raw: bytes
    diff: Any = None


def decode(raw: bytes) -> Message:
    """One server frame; AssertionError when its header lies."""
    assert int.from_bytes(raw[:4], "big") == len(raw), f"length header {raw[:4]!r} for {len(raw)}"
    end = 6 + raw[5]
    body = raw[end:]
    return Message(raw[4], raw[6:end].decode(), json.loads(body) if body else None, raw)


def sync_incoming(held: bytes, runs: list[list[int]]) -> bytes:
    """The frame after one SYNC diff, as serverless-sockets' browser client applies it."""
    frame = bytearray(held)
    delta = runs[0][0]
    size = len(frame) + delta
    frame = frame[:size] + bytearray(max(0, size - len(frame)))
    for run in runs[1:]:
        position, changed = run[0], run[1:]
        frame[position : position + len(changed)] = bytes(changed)
    return bytes(frame)


class SSPeer:
    """A serverless-sockets client over one real WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        #: per event, the frame this client holds (what SYNC diffs apply to)
        self.held: dict[str, bytes] = {}

    async def send(self, event: str, payload: Any = None, kind: int = MESSAGE) -> None:
        frame = encode(event, payload, kind)
        self.held[event] = frame
        await self.ws.send_bytes(frame)

    async def recv(self) -> Message:
        """The next frame; a SYNC frame comes back rebuilt (its payload the whole object)."""
        msg = await self.ws.receive(timeout=DEADLINE)
        assert msg.type is aiohttp.WSMsgType.BINARY, f"expected a binary frame, got {msg!r}"
        got = decode(msg.data)
        if got.type == SYNC:
            rebuilt = sync_incoming(self.held[got.event], got.payload)
            self.held[got.event] = rebuilt
            whole = decode(rebuilt)
            return Message(SYNC, whole.event, whole.payload, rebuilt, got.payload)
        return got

    async def closed(self) -> tuple[int | None, str]:
        """Wait for the server's close; its code and reason."""
        while True:
            msg = await self.ws.receive(timeout=DEADLINE)
            if msg.type is aiohttp.WSMsgType.CLOSE:
                return self.ws.close_code, str(msg.extra)
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return self.ws.close_code, ""
