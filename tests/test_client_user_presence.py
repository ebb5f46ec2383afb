"""The Python client's user and session channels and presence, over real sockets."""

import asyncio
from typing import Any

from monument_ws.auth import channel_of_session, channel_of_user
from monument_ws.brokers import MemoryBroker
from monument_ws.client import Client, Message
from tests.conftest import Connect, FakeClock, eventually
from tests.test_client import Gate
from tests.test_presence import join
from tests.test_security import token_parser


async def test_user_and_session_publications_reach_their_handlers(make_server):
    """publish_to_user and publish_to_session reach on_user / on_session, as Messages."""
    client, ws = await make_server()
    ws.session_parser = token_parser()
    got: list[tuple[str, Message]] = []
    c = Client(str(client.make_url("/ws")), headers={"X-Token": "user-ada"})

    @c.on_user
    def user(message: Message) -> None:
        got.append(("user", message))

    c.on_session(lambda message: got.append(("session", message)))
    async with c:
        assert c.welcome["channels"]["user"]["channel"] == channel_of_user("ada")
        await ws.publish_to_user("ada", "note", {"n": 1})
        await ws.publish_to_session("session-of-user-ada", "note", {"n": 2})
        await eventually(lambda: len(got) == 2, "both publications")
    assert got == [
        ("user", Message(channel_of_user("ada"), "note", {"n": 1}, 1)),
        ("session", Message(channel_of_session("session-of-user-ada"), "note", {"n": 2}, 1)),
    ]
    assert c.subscriptions == {}  # the reserved channels are not the application's subscriptions


async def test_user_publications_made_while_away_are_recovered_once_in_order(make_server):
    """Published to the user while the client reconnects: recovered after it, then live ones."""
    client, ws = await make_server()
    ws.session_parser = token_parser()
    ws.handler("bye")(lambda message, socket: asyncio.ensure_future(socket.close(1011, "bye")))
    got: list[Any] = []
    gate = Gate()
    c = Client(str(client.make_url("/ws")), headers={"X-Token": "user-ada"}, sleep=gate)
    c.on_user(lambda message: got.append((message.offset, message.data)))
    resubscribed: list[Any] = []
    c.on("ws:resubscribed", resubscribed.append)
    async with c:
        await ws.publish_to_user("ada", "note", "before")
        await eventually(lambda: len(got) == 1, "the first publication")
        c.tell("bye")
        await eventually(lambda: gate.delays != [], "the client waiting to reconnect")
        await ws.publish_to_user("ada", "note", "away 1")
        await ws.publish_to_user("ada", "note", "away 2")
        gate.open.set()
        await eventually(lambda: len(resubscribed) == 1, "the user channel recovered")
        await ws.publish_to_user("ada", "note", "after")
        await eventually(lambda: len(got) == 4, "the live publication")
    assert got == [(1, "before"), (2, "away 1"), (3, "away 2"), (4, "after")]
    assert resubscribed == [{"channel": channel_of_user("ada"), "recovered": True}]


async def test_a_reconnect_with_nothing_missed_does_not_resubscribe(make_server):
    """The welcome's offset is the one last received: the server's own join is enough."""
    client, ws = await make_server()
    ws.session_parser = token_parser()
    ws.handler("bye")(lambda message, socket: asyncio.ensure_future(socket.close(1011, "bye")))
    got: list[Any] = []
    c = Client(str(client.make_url("/ws")), headers={"X-Token": "user-ada"}, sleep=Gate(1))
    c.on_session(lambda message: got.append(message.data))
    reconnected: list[Any] = []
    c.on("ws:reconnect", reconnected.append)
    resubscribed: list[Any] = []
    c.on("ws:resubscribed", resubscribed.append)
    async with c:
        await ws.publish_to_session("session-of-user-ada", "note", 1)
        await eventually(lambda: got == [1], "the first publication")
        c.tell("bye")
        await eventually(lambda: len(reconnected) == 1, "the reconnect")
        await ws.publish_to_session("session-of-user-ada", "note", 2)
        await eventually(lambda: got == [1, 2], "the publication after the reconnect")
    assert resubscribed == []


async def test_presence_label_meta_members_and_transitions(make_server):
    """label/meta reach presence(); subscription.on("member") sees the four transitions."""
    clock = FakeClock()
    client, ws = await make_server(
        broker=MemoryBroker(clock=clock),
        clock=clock,
        channels={"room:*": {"presence": True, "presence_events": True}},
        presence_sync=3600,  # the test sweeps, on the fake clock
        presence_disconnect=60,
        presence_removal=120,
    )
    ws.handler("bye")(lambda message, socket: asyncio.ensure_future(socket.close(1011, "bye")))
    url = str(client.make_url("/ws"))
    seen: list[tuple[str, Any, Any]] = []
    async with Client(url) as watcher:
        room = await watcher.subscribe("room:1", lambda m: None, label="watcher")
        # The watcher's own "connected" may come before or after this line: only Ada's count.

        def member(m: dict[str, Any]) -> None:
            if m["label"] == "Ada":
                seen.append((m["state"], "Ada", m["meta"]))

        room.on("member", member)
        gate = Gate()
        async with Client(url, sleep=gate, heartbeat=False) as ada:
            await ada.subscribe("room:1", lambda m: None, label="Ada", meta={"role": "admin"})
            await eventually(lambda: len(seen) == 1, "ada connected")
            page = await watcher.presence("room:1")
            assert page["count"] == 2
            by_label = {m["label"]: m for m in page["members"]}
            assert by_label["Ada"]["meta"] == {"role": "admin"}
            assert by_label["Ada"]["client_id"] == ada.client_id
            assert by_label["Ada"]["state"] == "connected"
            first = await watcher.presence("room:1", limit=1)
            assert len(first["members"]) == 1
            assert "cursor" in first
            rest = await watcher.presence("room:1", limit=1, cursor=first["cursor"])
            assert "cursor" not in rest
            ada.tell("bye")
            await eventually(lambda: len(seen) == 2, "ada disconnected")
            gate.open.set()  # ada reconnects and resubscribes, with its label
            await eventually(lambda: len(seen) == 3, "ada reconnected")
        await eventually(lambda: len(seen) == 4, "ada closed: disconnected")
        clock.now += 121  # silent past presence_removal
        await ws.presence.sweep()
        await eventually(lambda: len(seen) == 5, "ada removed")
        assert (await watcher.presence("room:1"))["count"] == 1
    assert seen == [
        ("connected", "Ada", {"role": "admin"}),
        ("disconnected", "Ada", {"role": "admin"}),
        ("reconnected", "Ada", {"role": "admin"}),
        ("disconnected", "Ada", {"role": "admin"}),
        ("removed", "Ada", {"role": "admin"}),
    ]


async def test_subscription_join_and_leave_listeners(make_server):
    """In a join_leave namespace, subscription.on("join" / "leave") gets {"client_id"}."""
    client, _ws = await make_server(channels={"room:*": {"join_leave": True}})
    url = str(client.make_url("/ws"))
    seen: list[tuple[str, Any]] = []
    async with Client(url) as watcher, Client(url) as other:
        room = await watcher.subscribe("room:1", lambda m: None)
        room.on("join", lambda data: seen.append(("join", data["client_id"])))
        room.on("leave", lambda data: seen.append(("leave", data["client_id"])))
        await other.subscribe("room:1", lambda m: None)
        await other.unsubscribe("room:1")
        await eventually(lambda: len(seen) == 2, "the join and the leave")
        assert seen == [("join", other.client_id), ("leave", other.client_id)]


async def test_no_member_pushes_without_presence_events(make_server):
    """A presence namespace without presence_events pushes nothing; presence() still answers."""
    client, _ws = await make_server(channels={"room:*": {"presence": True}})
    url = str(client.make_url("/ws"))
    pushes: list[Any] = []
    async with Client(url) as watcher, Client(url) as other:
        watcher.on("ws:member", pushes.append)
        await watcher.subscribe("room:1", lambda m: None)
        await other.subscribe("room:1", lambda m: None, label="other")
        page = await watcher.presence("room:1")
        assert sorted(str(m["label"]) for m in page["members"]) == ["None", "other"]
    assert pushes == []


async def test_member_push_on_the_wire(make_server, connect: Connect):
    """ws:member as a raw subscriber gets it: the member with channel and the transition as
    state, no offset; an unsubscribe is "removed"."""
    clock = FakeClock()
    client, _ws = await make_server(
        broker=MemoryBroker(clock=clock),
        clock=clock,
        channels={"room:*": {"presence": True, "presence_events": True}},
    )
    watcher = await connect(client)
    await join(watcher, "room:1")
    fence = await watcher.request({"event": "ws:ping", "id": "fence"})
    assert fence["event"] == "ws:ping"  # the watcher's own "connected" may come before it
    peer = await connect(client)
    await join(peer, "room:1", label="Ada")
    frame = await watcher.recv()
    while frame["data"].get("client_id") != peer.client_id:
        frame = await watcher.recv()
    assert frame == {
        "event": "ws:member",
        "channel": "room:1",
        "data": {
            "client_id": peer.client_id,
            "user": None,
            "label": "Ada",
            "meta": None,
            "state": "connected",
            "first_seen": clock.now,
            "last_seen": clock.now,
            "channel": "room:1",
        },
    }
    answer = await peer.request(
        {"event": "ws:unsubscribe", "id": "u", "data": {"channel": "room:1"}}
    )
    assert answer["event"] == "ws:unsubscribe"
    frame = await watcher.recv()
    assert (frame["event"], frame["data"]["state"], frame["data"]["label"]) == (
        "ws:member",
        "removed",
        "Ada",
    )
