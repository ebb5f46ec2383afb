"""Presence: members, the four transitions (each exactly once), knock, across processes."""

import asyncio
import signal
from typing import Any

import pytest
import redis.asyncio as aioredis

from monument_ws import presence
from monument_ws.brokers import MemoryBroker
from monument_ws.client import Client
from tests.conftest import REDIS_URL, Connect, FakeClock, Peer, eventually, frames_until
from tests.test_cluster import Server


@pytest.fixture
async def presence_server(make_server, bus):
    clock = FakeClock()
    events: list[tuple[str, str, str]] = []
    for name in (presence.CONNECTED, presence.DISCONNECTED, presence.RECONNECTED, presence.REMOVED):
        bus.on(
            name,
            lambda event, *, channel, client, **_: events.append((event, channel, client["state"])),
        )
    client, ws = await make_server(
        broker=MemoryBroker(clock=clock),
        clock=clock,
        channels={"room:*": {"presence": True}},
        presence_sync=3600,  # sweeps are run by the tests, on the fake clock
        presence_disconnect=60,
        presence_removal=120,
    )
    return client, ws, clock, events


async def join(peer: Peer, channel: str, **extra: Any) -> None:
    answer = await peer.request(
        {"event": "ws:subscribe", "id": "j", "data": {"channel": channel, **extra}}
    )
    assert answer["event"] == "ws:subscribe", answer


async def members(peer: Peer, channel: str, **extra: Any) -> dict[str, Any]:
    answer = await peer.request(
        {"event": "ws:presence", "id": "p", "data": {"channel": channel, **extra}}
    )
    assert answer["event"] == "ws:presence", answer
    data: dict[str, Any] = answer["data"]
    return data


async def test_state_machine_each_event_exactly_once(presence_server, connect: Connect):
    """connected → disconnected → reconnected → disconnected (silence) → removed, once each."""
    client, ws, clock, events = presence_server
    watcher = await connect(client)
    await join(watcher, "room:watch")  # keeps the channel swept on this process
    peer = await connect(client)
    await join(peer, "room:1")
    await peer.close()  # closing marks it disconnected at once

    def mine() -> list[tuple[str, str, str]]:
        return [e for e in events if e[1] == "room:1"]

    await eventually(lambda: len(mine()) == 2, "the disconnect")
    back = await connect(client, params={"resume": peer.welcome["data"]["resume"]})
    assert back.client_id == peer.client_id
    clock.now += 30
    await join(back, "room:1")
    await eventually(lambda: len(mine()) == 3, "the reconnect")
    clock.now += 61  # back stays silent past presence_disconnect
    await ws.presence.sweep()
    await ws.presence.sweep()
    clock.now += 121  # and disconnected past presence_removal
    await ws.presence.sweep()
    await ws.presence.sweep()
    assert mine() == [
        ("client.connected", "room:1", "connected"),
        ("client.disconnected", "room:1", "disconnected"),
        ("client.reconnected", "room:1", "connected"),
        ("client.disconnected", "room:1", "disconnected"),
        ("client.removed", "room:1", "removed"),
    ]


async def test_any_frame_keeps_a_member_connected(presence_server, connect: Connect):
    """A member that sends frames is refreshed by the sweep and never goes disconnected."""
    client, ws, clock, events = presence_server
    peer = await connect(client)
    await join(peer, "room:alive")
    for _ in range(5):
        clock.now += 40
        await peer.request({"event": "ws:ping", "id": "x"})
        await ws.presence.sweep()
    assert [e[0] for e in events] == ["client.connected"]
    listed = await members(peer, "room:alive")
    assert listed["members"][0]["last_seen"] == clock.now


async def test_a_member_removed_while_still_subscribed_comes_back(
    presence_server, connect: Connect
):
    """A member silent past presence_removal is removed though its socket stays subscribed;
    when it heartbeats (at once) or sends any frame (at the next sweep) it comes back as
    client.reconnected, listed again with its label and first_seen -- once each."""
    client, ws, clock, events = presence_server
    watcher = await connect(client)  # lists the members without being one
    beating, talking = await connect(client), await connect(client)
    await join(beating, "room:r", label="beating")
    await join(talking, "room:r", label="talking")
    first_seen = clock.now
    await ws.presence.sweep()  # takes note of the frames they sent so far
    clock.now += 61
    await ws.presence.sweep()  # both silent past presence_disconnect: disconnected
    clock.now += 121
    await ws.presence.sweep()  # and past presence_removal: removed, still subscribed
    assert (await members(watcher, "room:r"))["count"] == 0
    await ws.presence.sweep()
    assert (await members(watcher, "room:r"))["count"] == 0  # silent: stays removed

    clock.now += 1
    beat = await beating.request({"event": "ws:heartbeat", "id": "h", "data": {}})
    assert beat["data"] == {}
    listed = await members(watcher, "room:r")
    assert [(m["label"], m["state"]) for m in listed["members"]] == [("beating", "connected")]
    assert listed["members"][0]["first_seen"] == first_seen
    assert listed["members"][0]["last_seen"] == clock.now

    await talking.request({"event": "ws:ping", "id": "x"})
    await ws.presence.sweep()
    await ws.presence.sweep()
    listed = await members(watcher, "room:r")
    assert sorted(m["label"] for m in listed["members"]) == ["beating", "talking"]
    assert {m["state"] for m in listed["members"]} == {"connected"}
    assert [e[0] for e in events if e[2] != "connected" or e[0] != "client.connected"] == [
        "client.disconnected",
        "client.disconnected",
        "client.removed",
        "client.removed",
        "client.reconnected",
        "client.reconnected",
    ]


async def test_a_disconnected_member_that_heartbeats_is_reconnected_at_once(
    presence_server, connect: Connect
):
    """A heartbeat from a member the sweep marked disconnected brings it back immediately."""
    client, ws, clock, events = presence_server
    peer = await connect(client)
    await join(peer, "room:hb")
    await ws.presence.sweep()  # takes note of the frames it sent so far
    clock.now += 61
    await ws.presence.sweep()
    await peer.request({"event": "ws:heartbeat", "id": "h", "data": {"channels": ["room:hb"]}})
    assert [e[0] for e in events] == [
        "client.connected",
        "client.disconnected",
        "client.reconnected",
    ]


async def test_unsubscribe_removes_at_once(presence_server, connect: Connect):
    """Leaving a channel on purpose removes the member (no disconnected phase)."""
    client, _ws, _clock, events = presence_server
    peer = await connect(client)
    await join(peer, "room:2")
    await peer.request({"event": "ws:unsubscribe", "id": "u", "data": {"channel": "room:2"}})
    assert [e[0] for e in events] == ["client.connected", "client.removed"]


class HeldBroker(MemoryBroker):
    """A memory broker whose next presence read (or compare-and-set), once ``hold()`` is
    called, waits until the event it returns is set: a slow broker at the worst moment."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gates: dict[str, asyncio.Event] = {}
        self.entered = asyncio.Event()

    def hold(self, method: str = "presence_get") -> asyncio.Event:
        gate = self._gates[method] = asyncio.Event()
        self.entered.clear()
        return gate

    async def _wait(self, method: str) -> None:
        gate = self._gates.pop(method, None)
        if gate is not None:
            self.entered.set()
            await gate.wait()

    async def presence_get(self, channel: str) -> dict[str, dict[str, Any]]:
        await self._wait("presence_get")
        return await super().presence_get(channel)

    async def presence_replace(
        self,
        channel: str,
        client_id: str,
        expected: dict[str, Any] | None,
        new: dict[str, Any] | None,
        ttl: float,
    ) -> bool:
        await self._wait("presence_replace")
        return await super().presence_replace(channel, client_id, expected, new, ttl)


async def test_unsubscribe_during_a_heartbeat_leaves_no_ghost(make_server, bus, connect: Connect):
    """ws:heartbeat reads the member's record; ws:unsubscribe removes the member before that
    read comes back: the heartbeat writes nothing back -- no member left with no socket, no
    client.reconnected, no ws:member push."""
    clock = FakeClock()
    events: list[str] = []
    for name in (presence.CONNECTED, presence.DISCONNECTED, presence.RECONNECTED, presence.REMOVED):
        bus.on(name, lambda event, **_: events.append(event))
    broker = HeldBroker(clock=clock)
    client, ws = await make_server(
        broker=broker,
        clock=clock,
        channels={"room:*": {"presence": True, "presence_events": True}},
        presence_sync=3600,
    )
    watcher, peer = await connect(client), await connect(client)
    await join(watcher, "room:g")
    await join(peer, "room:g")
    assert events == ["client.connected", "client.connected"]
    gate = broker.hold()
    await peer.send({"event": "ws:heartbeat", "id": "h", "data": {}})
    await asyncio.wait_for(broker.entered.wait(), 10)  # the heartbeat's read is held
    left = await peer.request({"event": "ws:unsubscribe", "id": "u", "data": {"channel": "room:g"}})
    assert left["data"] == {}
    gate.set()
    while (beat := await peer.recv()).get("id") != "h":
        pass  # the held heartbeat's answer: it has finished
    assert beat["data"] == {}
    frames = await frames_until(watcher, "fence")
    listed = await members(watcher, "room:g")
    assert [m["client_id"] for m in listed["members"]] == [watcher.client_id]
    assert events == ["client.connected", "client.connected", "client.removed"]
    pushed = [f["data"]["state"] for f in frames if f.get("event") == "ws:member"]
    assert "reconnected" not in pushed
    assert ws.presence.local_members() == 1


async def test_unsubscribe_during_a_heartbeats_write_leaves_no_ghost(
    make_server, bus, connect: Connect
):
    """A member removed for its silence, still subscribed, heartbeats; it unsubscribes while
    the heartbeat's write (putting it back) is on its way, so leave() reads no record and
    does nothing: the heartbeat takes its write back, and says nothing."""
    clock = FakeClock()
    events: list[str] = []
    for name in (presence.CONNECTED, presence.DISCONNECTED, presence.RECONNECTED, presence.REMOVED):
        bus.on(name, lambda event, **_: events.append(event))
    broker = HeldBroker(clock=clock)
    client, ws = await make_server(
        broker=broker,
        clock=clock,
        channels={"room:*": {"presence": True}},
        presence_sync=3600,
        presence_disconnect=60,
        presence_removal=120,
    )
    peer = await connect(client)
    await join(peer, "room:w")
    await ws.presence.sweep()
    clock.now += 61
    await ws.presence.sweep()  # disconnected
    clock.now += 121
    await ws.presence.sweep()  # removed, still subscribed
    assert events == ["client.connected", "client.disconnected", "client.removed"]
    gate = broker.hold("presence_replace")
    await peer.send({"event": "ws:heartbeat", "id": "h", "data": {}})
    await asyncio.wait_for(broker.entered.wait(), 10)  # the heartbeat's write is held
    left = await peer.request({"event": "ws:unsubscribe", "id": "u", "data": {"channel": "room:w"}})
    assert left["data"] == {}
    gate.set()
    while (beat := await peer.recv()).get("id") != "h":
        pass
    assert beat["data"] == {}
    assert await broker.presence_get("room:w") == {}
    assert events == ["client.connected", "client.disconnected", "client.removed"]
    assert ws.presence.local_members() == 0


async def test_label_meta_count_and_pages(presence_server, connect: Connect):
    """Members carry label and meta; the list is paginated with a cursor; count is the total."""
    client, _ws, _clock, _events = presence_server
    peers = [await connect(client) for _ in range(5)]
    for i, peer in enumerate(peers):
        await join(peer, "room:big", label=f"user {i}", meta={"i": i})
    first = await members(peers[0], "room:big", limit=2)
    assert first["count"] == 5
    assert len(first["members"]) == 2
    seen = list(first["members"])
    cursor = first["cursor"]
    while cursor:
        page = await members(peers[0], "room:big", limit=2, cursor=cursor)
        seen.extend(page["members"])
        cursor = page.get("cursor")
    assert sorted(m["client_id"] for m in seen) == sorted(p.client_id for p in peers)
    one = next(m for m in seen if m["client_id"] == peers[3].client_id)
    assert (one["label"], one["meta"], one["state"]) == ("user 3", {"i": 3}, "connected")
    assert set(one) == {"client_id", "user", "label", "meta", "state", "first_seen", "last_seen"}


async def test_who_may_list_members(make_server, connect: Connect):
    """Subscribers may list; others only as the subscribe policy allows; no presence: not_found."""
    client, _ws = await make_server(
        channels={"vip:*": {"presence": True, "subscribe": "nobody"}, "open:*": {"presence": True}}
    )
    peer = await connect(client)
    refused = await peer.request({"event": "ws:presence", "id": 1, "data": {"channel": "vip:1"}})
    assert refused["error"]["code"] == "forbidden"
    assert (await members(peer, "open:1"))["count"] == 0
    none = await peer.request({"event": "ws:presence", "id": 2, "data": {"channel": "plain"}})
    assert none["error"]["code"] == "not_found"
    bad = await peer.request(
        {"event": "ws:presence", "id": 3, "data": {"channel": "open:1", "limit": 0}}
    )
    assert bad["error"]["code"] == "bad_frame"


async def test_knock_makes_members_heartbeat_now(presence_server):
    """knock asks every member to heartbeat; the Python client answers and last_seen moves."""
    client, ws, clock, _events = presence_server
    async with Client(str(client.make_url("/ws")), heartbeat=False) as member:
        await member.subscribe("room:k", lambda m: None)
        before = (await ws.presence.members("room:k"))["members"][0]["last_seen"]
        clock.now += 42
        await ws.knock("room:k")
        await eventually(
            lambda: (
                ws.presence.broker._presence["room:k"][member.client_id][0]["last_seen"]
                == before + 42
            ),
            "the knocked heartbeat",
        )


async def test_no_residue_after_1000_members_come_and_go(
    make_server, connect: Connect, redis_prefix
):
    """1,000 members join and leave: nothing stays in the process or in Redis."""
    from monument_ws.brokers.redis import RedisBroker

    broker = RedisBroker(REDIS_URL, prefix=redis_prefix)
    client, ws = await make_server(broker=broker, channels={"room:*": {"presence": True}})
    for i in range(1000):
        peer = await connect(client)
        await join(peer, f"room:{i % 10}")
        await peer.request(
            {"event": "ws:unsubscribe", "id": "u", "data": {"channel": f"room:{i % 10}"}}
        )
        await peer.close()
    await eventually(lambda: len(ws.hub) == 0, "all sockets gone")
    assert ws.presence.local_members() == 0
    assert ws.presence._channels == {}
    r = aioredis.from_url(REDIS_URL)
    try:
        assert [k async for k in r.scan_iter(f"{redis_prefix}:presence:*")] == []
        assert [k async for k in r.scan_iter(f"{redis_prefix}:client:*")] == []
    finally:
        await r.aclose()


async def test_member_of_a_killed_process_is_disconnected_then_removed(redis_prefix):
    """Two processes with Redis: a member on A is listed on B; SIGKILL A → B sees disconnected, then removed."""
    small = [
        "--presence-sync",
        "0.2",
        "--presence-disconnect",
        "1.5",
        "--presence-removal",
        "1.5",
        "--heartbeat",
        "0.3",
    ]
    common = ["--broker", REDIS_URL, "--broker-prefix", redis_prefix, "--secret", "s", *small]
    a = await Server(*common).start()
    b = await Server(*common).start()
    try:
        async with Client(a.url, reconnect=False) as on_a, Client(b.url) as on_b:
            await on_a.subscribe("chat", lambda m: None)
            await on_b.subscribe("chat", lambda m: None)

            async def state_of(client_id: str) -> str | None:
                listed = await on_b.call("ws:presence", {"channel": "chat"})
                found = [m for m in listed["members"] if m["client_id"] == client_id]
                return found[0]["state"] if found else None

            assert await state_of(on_a.client_id) == "connected"  # type: ignore[arg-type]
            assert a.proc is not None
            a.proc.send_signal(signal.SIGKILL)
            await a.proc.wait()
            states: list[str | None] = []

            async def seen(state: str | None) -> bool:
                current = await state_of(on_a.client_id)  # type: ignore[arg-type]
                if not states or states[-1] != current:
                    states.append(current)
                return current == state

            for wanted in ("disconnected", None):
                for _ in range(400):
                    if await seen(wanted):
                        break
                    await asyncio.sleep(0.05)
            assert states[-2:] == ["disconnected", None]
            assert await state_of(on_b.client_id) == "connected"  # type: ignore[arg-type]
    finally:
        await b.stop()
        await a.stop()
