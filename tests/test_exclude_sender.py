"""Leaving the sender out of a publication or broadcast, over real sockets: ``ws:publish``
with ``exclude_sender``, the ``broadcast(..., exclude_sender=True)`` yield, the server API's
``exclude=<client id>``; live, across two servers sharing Redis, and in recovery."""

import asyncio
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner

import monument_ws
from monument_ws import MonumentWS, protocol
from monument_ws.channels import fanout
from monument_ws.cli import cli
from monument_ws.client import Client, Message
from monument_ws.protocol.errors import BadFrame
from monument_ws.publisher import Publisher
from monument_ws.yields import broadcast
from tests.conftest import DEADLINE, REDIS_URL, Connect, Peer, eventually
from tests.test_channels import GatedBroker, subscribe

CHAT = {"chat:*": {"publish": "subscribers"}}


async def servers(make_server: Any, settings: dict[str, Any]) -> list[tuple[Any, MonumentWS]]:
    """Two servers on one Redis, or one server twice for the memory broker."""
    first = await make_server(channels=CHAT, secret="s", **settings)
    if "broker" not in settings:
        return [first, first]
    return [first, await make_server(channels=CHAT, secret="s", **settings)]


async def publish(peer: Peer, channel: str, data: Any, request_id: Any, **extra: Any) -> Any:
    answer = await peer.request(
        {
            "event": "ws:publish",
            "id": request_id,
            "data": {"channel": channel, "event": "said", "data": data, **extra},
        }
    )
    assert answer["event"] == "ws:publish", answer
    return answer["data"]["offset"]


async def test_ws_publish_can_leave_the_sender_out(make_server, connect: Connect, broker_settings):
    """With exclude_sender the sender does not get its publication, the others (on the other
    server too) do; without it the sender gets it as before."""
    (a, ws_a), (b, _) = await servers(make_server, broker_settings)
    sender, near, far = await connect(a), await connect(a), await connect(b)
    for peer in (sender, near, far):
        await subscribe(peer, "chat:1")
    # Requests run concurrently: their offsets are taken from the replies, not assumed.
    replies: dict[int, int] = {}
    mine: list[Any] = []
    for request_id, extra in (
        (1, {"exclude_sender": True}),
        (2, {"exclude_sender": False}),
        (3, {}),
    ):
        await sender.send(
            {
                "event": "ws:publish",
                "id": request_id,
                "data": {"channel": "chat:1", "event": "said", "data": request_id, **extra},
            }
        )
    # A fence: once the server's publication (offset 4) reached the sender, every earlier offset
    # that was for it has too (one order per channel).
    while len(replies) < 3:
        frame = await sender.recv()
        if "id" in frame:
            replies[frame["id"]] = frame["data"]["offset"]
        else:
            mine.append(frame["data"])
    assert sorted(replies.values()) == [1, 2, 3]
    assert await ws_a.publish("chat:1", "said", "fence") == 4
    while not mine or mine[-1] != "fence":
        mine.append((await sender.recv())["data"])
    assert sorted(mine[:-1]) == [2, 3]
    for peer in (near, far):
        got = [await peer.recv() for _ in range(4)]
        assert [f["offset"] for f in got] == [1, 2, 3, 4]
        assert sorted(f["data"] for f in got[:3]) == [1, 2, 3]


async def test_recovery_skips_what_the_sender_was_left_out_of(
    make_server, connect: Connect, broker_settings
):
    """The excluded client id is kept with the history entry: the sender, back with its
    client id (resume) and since, does not get it replayed; another client does."""
    (a, _), _ = await servers(make_server, broker_settings)
    third, sender = await connect(a), await connect(a)
    epoch = (await subscribe(third, "chat:r"))["epoch"]
    await subscribe(sender, "chat:r")
    await publish(third, "chat:r", "from a third", "x")
    await publish(sender, "chat:r", "mine", "p", exclude_sender=True)
    await sender.close()
    back = await connect(a, f"/ws?resume={sender.welcome['data']['resume']}")
    assert back.client_id == sender.client_id
    since = {"offset": 0, "epoch": epoch}
    for peer in (back, await connect(a)):
        await peer.send(
            {"event": "ws:subscribe", "id": "r", "data": {"channel": "chat:r", "since": since}}
        )
    replayed = [await back.recv() for _ in range(2)]
    assert replayed[0]["data"] == "from a third"
    assert replayed[1]["id"] == "r"
    assert replayed[1]["data"]["recovered"] is True
    assert replayed[1]["data"]["offset"] == 2
    stranger = peer
    replayed = [await stranger.recv() for _ in range(3)]
    assert [f.get("data") for f in replayed[:2]] == ["from a third", "mine"]
    assert replayed[2]["data"]["recovered"] is True


@pytest.mark.parametrize("flag", ["yes", 1, 0, None, {"x": 1}, [True]])
async def test_a_non_boolean_exclude_sender_is_a_bad_frame(make_server, connect: Connect, flag):
    """exclude_sender must be true or false: anything else is answered with bad_frame,
    nothing is published and the socket stays open."""
    client, ws = await make_server(channels=CHAT)
    peer = await connect(client)
    await subscribe(peer, "chat:b")
    answer = await peer.request(
        {
            "event": "ws:publish",
            "id": 1,
            "data": {"channel": "chat:b", "event": "said", "data": 1, "exclude_sender": flag},
        }
    )
    assert answer["event"] == "ws:error"
    assert answer["error"]["code"] == "bad_frame"
    assert "exclude_sender" in answer["error"]["message"]
    assert (await peer.request({"event": "ws:ping", "id": 2}))["event"] == "ws:ping"
    assert await ws.publish("chat:b", "said", "next") == 1  # the bad one took no offset


async def test_broadcast_yield_can_leave_the_sender_out(
    make_server, connect: Connect, broker_settings
):
    """broadcast(..., exclude_sender=True), to every socket and to a channel: the sender
    gets only its reply, the others get the push and the publication."""
    (a, ws_a), (b, ws_b) = await servers(make_server, broker_settings)
    for ws in {id(ws_a): ws_a, id(ws_b): ws_b}.values():

        @ws.handler("shout")
        async def shout(message: Any, socket: Any) -> Any:
            n, exclude = message.data["n"], message.data["exclude"]
            yield broadcast(n, exclude_sender=exclude)
            yield broadcast(n, channel="room", event="said", exclude_sender=exclude)
            yield "done"

    sender, near, far = await connect(a), await connect(a), await connect(b)
    for peer in (sender, near, far):
        await subscribe(peer, "room")
    # One shout after the other (requests run concurrently): the first ends before the second.
    pushes: list[int] = []
    publications: list[int] = []
    ended: set[int] = set()
    for n, exclude in ((1, True), (2, False)):
        await sender.send({"event": "shout", "id": n, "data": {"n": n, "exclude": exclude}})
        while n not in ended:
            frame = await sender.recv()
            if frame.get("end"):
                ended.add(frame["id"])
            elif "offset" in frame:
                publications.append(frame["data"])
            elif "id" not in frame:
                pushes.append(frame["data"])
    for peer in (near, far):
        got = [await peer.recv() for _ in range(4)]
        assert [f["data"] for f in got if "offset" not in f] == [1, 2]
        assert [(f["offset"], f["data"]) for f in got if "offset" in f] == [(1, 1), (2, 2)]
    # The second's push and publication reach the sender; pushes and publications each
    # arrive in order, so the first's would have come before them.
    while not pushes or not publications:
        frame = await sender.recv()
        (publications if "offset" in frame else pushes).append(frame["data"])
    assert (pushes, publications) == ([2], [2])


async def test_a_non_boolean_exclude_sender_in_a_yield_is_refused(make_server, connect: Connect):
    """A handler passing a non-bool to broadcast() fails with an error frame (the TypeError
    is the handler's bug), not a traceback on the wire."""
    client, ws = await make_server()
    assert isinstance(ws, MonumentWS)

    @ws.handler("shout")
    async def shout(message: Any, socket: Any) -> Any:
        yield broadcast("hi", exclude_sender="yes")  # type: ignore[arg-type]

    peer = await connect(client)
    answer = await peer.request({"event": "shout", "id": 1})
    assert answer["event"] == "ws:error"
    assert "Traceback" not in str(answer)
    with pytest.raises(TypeError, match="exclude_sender"):
        broadcast("hi", exclude_sender=1)  # type: ignore[arg-type]


async def test_server_api_excludes_a_client_id_everywhere(
    make_server, connect: Connect, broker_settings
):
    """ws.publish(..., exclude=client_id) and ws.broadcast(..., exclude=client_id) leave
    out every socket of that client, on any server; others get them."""
    (a, ws_a), (b, _) = await servers(make_server, broker_settings)
    alice = await connect(a)
    alice_too = await connect(a, f"/ws?resume={alice.welcome['data']['resume']}")
    assert alice_too.client_id == alice.client_id
    bob = await connect(b)
    for peer in (alice, alice_too, bob):
        await subscribe(peer, "news")
    await ws_a.publish("news", "article", "not alice", exclude=alice.client_id)
    await ws_a.broadcast("notice", "not alice", exclude=alice.client_id)
    await ws_a.publish("news", "article", "everyone")
    assert (await bob.recv())["offset"] == 1
    assert await bob.recv() == {"event": "notice", "data": "not alice"}
    assert (await bob.recv())["offset"] == 2
    for peer in (alice, alice_too):
        assert (await peer.recv())["offset"] == 2
    for bad in ("", 7):
        with pytest.raises(TypeError, match="exclude"):
            await ws_a.publish("news", "article", 1, exclude=bad)  # type: ignore[arg-type]


async def test_python_client_publish_exclude_self(make_server, broker_settings):
    """client.publish(..., exclude_self=True): the other client gets it, the publisher does
    not; a later publish without it reaches both."""
    (a, _), (b, _) = await servers(make_server, broker_settings)
    mine: list[Message] = []
    theirs: list[Message] = []
    async with Client(str(a.make_url("/ws"))) as me, Client(str(b.make_url("/ws"))) as other:
        await me.subscribe("chat:c", mine.append)
        await other.subscribe("chat:c", theirs.append)
        assert await me.publish("chat:c", "said", "quiet", exclude_self=True) == 1
        assert await me.publish("chat:c", "said", "loud") == 2
        await eventually(lambda: len(theirs) == 2 and len(mine) == 1, "both publications")
        assert [(m.offset, m.data) for m in theirs] == [(1, "quiet"), (2, "loud")]
        assert [(m.offset, m.data) for m in mine] == [(2, "loud")]
        with pytest.raises(BadFrame, match="exclude_sender"):
            await me.publish("chat:c", "said", 3, exclude_self="yes")  # type: ignore[arg-type]


async def test_an_excluded_publication_during_recovery_is_skipped_too(
    aiohttp_client: Any, connect: Connect, bus: Any
):
    """Publications excluding the recovering client, landing during its recovery (one both
    live-buffered and in the history read, one buffered only), reach it neither way."""
    broker = GatedBroker()
    app = web.Application()
    ws = monument_ws.setup(app, websocket=True, bus=bus, broker=broker, secret="s")
    client = await aiohttp_client(app)
    broker.before_read.set()
    broker.after_read.set()
    first = await connect(client)
    reply = await subscribe(first, "feed")
    await ws.publish("feed", "item", "a")
    await first.close()
    for gate in (broker.before_read, broker.after_read, broker.reading, broker.read_done):
        gate.clear()
    peer = await connect(client, f"/ws?resume={first.welcome['data']['resume']}")
    me = peer.client_id
    assert me == first.client_id
    since = {"offset": 0, "epoch": reply["epoch"]}
    await peer.send(
        {"event": "ws:subscribe", "id": "r", "data": {"channel": "feed", "since": since}}
    )
    await asyncio.wait_for(broker.reading.wait(), DEADLINE)
    await ws.publish("feed", "item", "b", exclude=me)  # buffered AND in the history read
    broker.before_read.set()
    await asyncio.wait_for(broker.read_done.wait(), DEADLINE)
    await ws.publish("feed", "item", "c", exclude=me)  # buffered only
    await ws.publish("feed", "item", "d")
    broker.after_read.set()
    frames = [await peer.recv() for _ in range(3)]
    assert frames[0]["data"] == "a"
    assert frames[1]["id"] == "r"
    assert frames[1]["data"]["recovered"] is True
    assert (frames[2]["data"], frames[2]["offset"]) == ("d", 4)


async def test_an_excluded_publication_is_still_encoded_once(
    make_server, connect: Connect, monkeypatch
):
    """Leaving one subscriber out does not re-encode per socket: one encoding, one shared
    frame, and every other subscriber gets it."""
    client, ws = await make_server()
    peers = [await connect(client) for _ in range(20)]
    for peer in peers:
        await subscribe(peer, "big")
    encodings: list[Any] = []
    shared: list[Any] = []
    original_push, original_shared = protocol.channel_push, fanout.shared_frame

    def counting_push(*args: Any, **kwargs: Any) -> bytes:
        encodings.append(args)
        return original_push(*args, **kwargs)

    def counting_shared(*args: Any, **kwargs: Any) -> Any:
        shared.append(args)
        return original_shared(*args, **kwargs)

    monkeypatch.setattr(protocol, "channel_push", counting_push)
    monkeypatch.setattr(fanout, "shared_frame", counting_shared)
    await ws.publish("big", "news", 1, exclude=peers[0].client_id)
    assert (len(encodings), len(shared)) == (1, 1)
    assert [(await peer.recv())["data"] for peer in peers[1:]] == [1] * 19
    await ws.publish("big", "news", 2)
    assert (await peers[0].recv())["data"] == 2


async def test_a_publisher_excludes_a_client_id(make_server, connect: Connect, redis_prefix):
    """A Publisher outside the servers (Redis) leaves out the client id it is given."""
    client, _ = await make_server(broker=REDIS_URL, broker_prefix=redis_prefix)
    alice, bob = await connect(client), await connect(client)
    for peer in (alice, bob):
        await subscribe(peer, "news")
    async with Publisher(REDIS_URL, broker_prefix=redis_prefix) as publisher:
        await publisher.publish("news", "article", "not alice", exclude=alice.client_id)
        await publisher.publish_to_user("ada", "note", "nobody listens")  # the keyword is optional
        await publisher.publish("news", "article", "all")
    assert [(await bob.recv())["data"] for _ in range(2)] == ["not alice", "all"]
    assert (await alice.recv())["data"] == "all"


async def test_the_publish_command_excludes_a_client_id(
    make_server, connect: Connect, redis_prefix
):
    """monument-ws publish --exclude CLIENT_ID leaves that client out."""
    client, _ = await make_server(broker=REDIS_URL, broker_prefix=redis_prefix)
    alice, bob = await connect(client), await connect(client)
    for peer in (alice, bob):
        await subscribe(peer, "news")
    args = ["--broker", REDIS_URL, "--broker-prefix", redis_prefix]
    for extra in (["--exclude", alice.client_id], []):
        # The command runs its own event loop: in a thread, beside this test's.
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["publish", "news", "said", '"x"', *args, *extra]
        )
        assert result.exit_code == 0, result.output
    assert [(await bob.recv())["offset"] for _ in range(2)] == [1, 2]
    assert (await alice.recv())["offset"] == 2
