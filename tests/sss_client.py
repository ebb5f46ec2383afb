"""A super-scaled-sockets client for the tests, written from the format docs/protocol.md documents.

It speaks as super-scaled-sockets' JavaScript client does: JSON text frames with a ``sys`` code,
``BEGIN`` once after the socket opens, ``SYNC`` with each channel's ``lastUid`` instead after a
reconnect, request ids ``"id_<n>"``, the bare string ``h`` answered with ``h``; it keeps each
channel's ``lastUid`` from the subscribe answer, every FEED and every UPDATESUB. No monument_ws
code is used.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import aiohttp

DEADLINE = 10.0

SUBSCRIBE, UNSUBSCRIBE, BEGIN, SYNC, ASK, TELL, RESPONSE, FEED, BOOT = range(1, 10)
BROADCAST, UPDATESUB = 11, 12

_ids = itertools.count(1)


class SSSPeer:
    """A super-scaled-sockets client over one real WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        #: channel -> the uid of the last publication this client holds
        self.last_uid: dict[str, Any] = {}
        #: channel -> the query it subscribed with
        self.queries: dict[str, Any] = {}
        #: heartbeats (``h``) received and answered
        self.beats = 0

    async def send(self, payload: Any) -> None:
        await self.ws.send_str(json.dumps(payload))

    async def recv(self) -> dict[str, Any]:
        """The next frame as an object; ``h`` is answered on the way and skipped."""
        while True:
            msg = await self.ws.receive(timeout=DEADLINE)
            assert msg.type is aiohttp.WSMsgType.TEXT, f"expected a text frame, got {msg!r}"
            if msg.data == "h":
                self.beats += 1
                await self.ws.send_str("h")
                continue
            got: dict[str, Any] = json.loads(msg.data)
            if got.get("sys") in (FEED, UPDATESUB) and got.get("channel") in self.last_uid:
                self.last_uid[got["channel"]] = got["uid"]
            return got

    async def begin(self) -> dict[str, Any]:
        await self.send({"sys": BEGIN})
        got = await self.recv()
        assert got["sys"] == BEGIN, got
        if got.get("channel"):
            self.last_uid[got["channel"]] = got.get("lastUid")
        return got

    async def subscribe(self, channel: str, query: Any = None) -> dict[str, Any]:
        """Subscribe; the answer (other frames before it are skipped)."""
        request_id = f"id_{next(_ids)}"
        await self.send({"sys": SUBSCRIBE, "channel": channel, "query": query, "id": request_id})
        got = await self.until(SUBSCRIBE)
        assert got["id"] == request_id
        if got["result"]:
            self.last_uid[channel] = got.get("lastUid")
            self.queries[channel] = query
        return got

    async def ask(self, topic: str, msg: Any = None) -> dict[str, Any]:
        request_id = f"id_{next(_ids)}"
        await self.send({"sys": ASK, "topic": topic, "msg": msg, "id": request_id})
        got = await self.until(RESPONSE)
        assert got["id"] == request_id
        return got

    async def tell(self, topic: str, msg: Any = None) -> None:
        await self.send({"sys": TELL, "topic": topic, "msg": msg})

    async def resync(self, held: SSSPeer) -> dict[str, Any]:
        """As a reconnected client: SYNC the channels ``held`` (the dropped socket's client)
        had; returns the SYNC answer, with the FEEDs that came before it as ``records``."""
        self.last_uid, self.queries = dict(held.last_uid), dict(held.queries)
        subscriptions = [
            {"channel": ch, "lastUid": uid, "query": self.queries.get(ch)}
            for ch, uid in self.last_uid.items()
        ]
        await self.send({"sys": SYNC, "subscriptions": subscriptions})
        early: list[dict[str, Any]] = []
        while (got := await self.recv())["sys"] != SYNC:
            early.append(got)  # the client queues these until the SYNC answer, then feeds them
        got["records"] = got["records"] + early
        return got

    async def until(self, sys: int) -> dict[str, Any]:
        while (got := await self.recv()).get("sys") != sys:
            pass
        return got

    async def closed(self) -> tuple[int | None, str]:
        """Wait for the server's close; its code and reason."""
        while True:
            msg = await self.ws.receive(timeout=DEADLINE)
            if msg.type is aiohttp.WSMsgType.CLOSE:
                return self.ws.close_code, str(msg.extra)
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return self.ws.close_code, ""
