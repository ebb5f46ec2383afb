"""The codec contract (monument_ws.protocol.codecs.base) with a format made up for the test: one
message may decode into several native frames or a protocol-level reply, and a format is
plugged in by name alone."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from monument_ws import MonumentWS
from monument_ws.protocol import codecs
from monument_ws.protocol.codecs import Codec, CodecSession, Decoded, Reply
from monument_ws.protocol.frames import CloseCode, ErrorCode, Invalid
from monument_ws.protocol.writer import text_frame
from tests.conftest import DEADLINE


class Lines(Codec):
    """Text lines: ``ping`` is answered ``pong`` by the codec itself; ``a;b`` is two requests
    (events a and b); ``bye`` closes with 1003; everything out is ``event=data``. Stateless:
    one session for every socket."""

    name = "lines"

    def __init__(self) -> None:
        self._session = _LinesSession(self)

    def session(self) -> CodecSession:
        return self._session

    def encode_shared(self, frame: bytes) -> bytes:
        return self._session.encode(frame)


class _LinesSession(CodecSession):
    __slots__ = ("_codec",)

    def __init__(self, codec: Lines) -> None:
        self._codec = codec

    @property
    def codec(self) -> Codec:
        return self._codec

    def decode(self, data: bytes, binary: bool) -> Decoded:
        text = data.decode()
        if text == "ping":
            return (Reply(text_frame(b"pong")),)
        if text == "bye":
            return (Invalid(ErrorCode.BAD_FRAME, "bye", close=CloseCode.UNSUPPORTED_DATA),)
        return [
            orjson.dumps({"event": event, "id": f"{event}-{n}"})
            for n, event in enumerate(text.split(";"))
        ]

    def encode(self, frame: bytes) -> bytes:
        obj = orjson.loads(frame)
        if obj["event"] == "ws:welcome":
            return b""
        return text_frame(f"{obj['event']}={orjson.dumps(obj.get('data')).decode()}".encode())


async def test_a_registered_format_is_served_by_name(make_server, monkeypatch: Any):
    monkeypatch.setitem(codecs.CODECS, "lines", Lines)
    client, plugin = await make_server(endpoints={"/lines": "lines"})
    ws: MonumentWS = plugin

    @ws.handler("a")
    async def a(message: Any, socket: Any) -> str:
        return "A"

    @ws.handler("b")
    async def b(message: Any, socket: Any) -> str:
        return "B"

    peer = await client.ws_connect("/lines")
    await peer.send_str("ping")
    assert (await peer.receive_str(timeout=DEADLINE)) == "pong"
    await peer.send_str("a;b")
    got = {await peer.receive_str(timeout=DEADLINE) for _ in range(2)}
    assert got == {'a="A"', 'b="B"'}
    await ws.broadcast("news", 1)
    assert (await peer.receive_str(timeout=DEADLINE)) == "news=1"
    await peer.send_str("bye")
    msg = await peer.receive(timeout=DEADLINE)
    assert (msg.data, msg.extra) == (1003, "bye")


def test_an_unknown_format_names_the_known_ones():
    with pytest.raises(
        ValueError, match="unknown wire format 'x'; known: owlmeans, serverless-sockets"
    ):
        codecs.codec("x")
