"""One channel, four wire formats: a native socket, a serverless-sockets, a super-scaled-sockets
and an @owlmeans/socket client subscribe to the same channel, take turns publishing, and each
receives every publication -- its own and the others' -- once, in offset order, with the data
as it was published. On the memory broker all four share one server; on Redis they are spread
over two servers, so every publication also crosses processes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

import monument_ws
from tests import ss_client, sss_client
from tests.conftest import REDIS_URL, Peer, welcomed
from tests.owl_client import OwlPeer
from tests.sss_client import SSSPeer

CHANNEL = "room:mixed"
ENDPOINTS = {"/ss": "serverless-sockets", "/sss": "super-scaled-sockets", "/owl": "owlmeans"}
ROUNDS = 5

#: One client of one format subscribed to a channel: publish(data) to it, and the next
#: publication of it received as (offset, event, data), skipping anything else (replies,
#: welcomes, join and leave pushes, heartbeats).
Publish = Callable[[str], Awaitable[None]]
Next = Callable[[], Awaitable[tuple[int, str, Any]]]


async def native_client(client: Any, channel: str) -> tuple[Publish, Next]:
    peer: Peer = await welcomed(await client.ws_connect("/ws"))
    reply = await peer.request({"event": "ws:subscribe", "id": "s", "data": {"channel": channel}})
    assert "error" not in reply, reply
    ids = iter(range(1, 1_000))

    async def publish(data: str) -> None:
        frame = {"channel": channel, "event": "say", "data": data}
        await peer.send({"event": "ws:publish", "id": next(ids), "data": frame})

    async def receive() -> tuple[int, str, Any]:
        while True:
            frame = await peer.recv()
            if frame.get("channel") == channel and "offset" in frame:
                return frame["offset"], frame["event"], frame["data"]

    return publish, receive


async def serverless_client(client: Any, channel: str) -> tuple[Publish, Next]:
    peer = ss_client.SSPeer(await client.ws_connect("/ss"))
    await peer.send("ws:subscribe", {"channel": channel})
    while (await peer.recv()).event != "ws:subscribe":
        pass

    async def publish(data: str) -> None:
        await peer.send("ws:publish", {"channel": channel, "event": "say", "data": data})

    async def receive() -> tuple[int, str, Any]:
        while True:
            got = await peer.recv()
            payload = got.payload
            is_publication = got.type == ss_client.BROADCAST and isinstance(payload, dict)
            if is_publication and payload.get("channel") == channel and "offset" in payload:
                return payload["offset"], got.event, payload["data"]

    return publish, receive


async def super_scaled_client(client: Any, channel: str) -> tuple[Publish, Next]:
    peer = SSSPeer(await client.ws_connect("/sss"))
    await peer.begin()
    assert (await peer.subscribe(channel))["result"] is True
    ids = iter(range(1, 1_000))

    async def publish(data: str) -> None:
        msg = {"channel": channel, "event": "say", "data": data}
        await peer.send(
            {"sys": sss_client.ASK, "topic": "ws:publish", "msg": msg, "id": f"p{next(ids)}"}
        )

    async def receive() -> tuple[int, str, Any]:
        while True:
            got = await peer.recv()
            if got.get("sys") == sss_client.FEED and got.get("channel") == channel:
                return int(str(got["uid"]).rsplit(":", 1)[-1]), got["topic"], got["msg"]

    return publish, receive


async def owlmeans_client(client: Any, channel: str) -> tuple[Publish, Next]:
    peer = OwlPeer(await client.ws_connect("/owl"))
    await peer.call("ws:subscribe", {"channel": channel})

    async def publish(data: str) -> None:
        await peer.call("ws:publish", {"channel": channel, "event": "say", "data": data})

    async def receive() -> tuple[int, str, Any]:
        while True:
            got = await peer.next_event()
            if got.get("channel") == channel and "offset" in got:
                return got["offset"], got["event"], got["payload"]

    return publish, receive


FORMATS = {
    "native": native_client,
    "serverless-sockets": serverless_client,
    "super-scaled-sockets": super_scaled_client,
    "owlmeans": owlmeans_client,
}


async def server(aiohttp_client: Any, **settings: Any) -> Any:
    """A server of its own bus with the three endpoints; subscribers of room:* may publish."""
    app = web.Application()
    monument_ws.setup(
        app,
        bus=monument_ws.EventBus("mixed"),
        websocket=True,
        upgrade_rate=0,
        endpoints=ENDPOINTS,
        channels={"room:*": {"publish": "subscribers"}},
        **settings,
    )
    return await aiohttp_client(app)


@pytest.mark.parametrize("broker", ["memory", "redis"])
async def test_four_formats_in_one_channel_receive_everything_in_order(
    aiohttp_client: Any, broker: str, request: pytest.FixtureRequest
) -> None:
    if broker == "memory":
        only = await server(aiohttp_client)
        places = dict.fromkeys(FORMATS, only)
    else:
        prefix = request.getfixturevalue("redis_prefix")
        a = await server(aiohttp_client, broker=REDIS_URL, broker_prefix=prefix)
        b = await server(aiohttp_client, broker=REDIS_URL, broker_prefix=prefix)
        places = {"native": a, "serverless-sockets": b, "super-scaled-sockets": a, "owlmeans": b}
    clients = {name: await make(places[name], CHANNEL) for name, make in FORMATS.items()}

    expected: list[tuple[int, str, Any]] = []
    for turn in range(ROUNDS):
        for name, (publish, _) in clients.items():
            data = f"{name} #{turn}"
            await publish(data)
            expected.append((len(expected) + 1, "say", data))
            # every format receives it next: one total order, no publication skipped or doubled
            for reader, (_, receive) in clients.items():
                assert await receive() == expected[-1], (reader, expected[-1])
    assert len(expected) == ROUNDS * len(FORMATS)


async def test_the_demo_serves_its_chat_to_all_four_formats(aiohttp_client: Any) -> None:
    """`monument-ws run`'s demo app: /ws, /ss, /sss and /owl share its chat channel."""
    from monument_ws.app_template.app import create_app

    client = await aiohttp_client(create_app())
    clients = [await make(client, "chat") for make in FORMATS.values()]
    for n, (publish, _) in enumerate(clients, start=1):
        await publish(f"hello {n}")
        for _, receive in clients:
            assert await receive() == (n, "say", f"hello {n}")
