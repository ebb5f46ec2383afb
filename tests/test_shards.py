"""Channels over several Redis servers: a sharded broker on three redis-servers of the test's own.

Each test starts its own redis-server processes on free ports (the shared Redis is never
stopped) and two applications on real sockets, each with its own sharded broker: two
processes as far as Redis can tell (their own connections and node ids).
"""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from click.testing import CliRunner

import monument_ws
from monument_ws import Config, EventBus, MonumentWS, Unavailable
from monument_ws.brokers import from_url
from monument_ws.brokers.redis import ShardedRedisBroker
from monument_ws.brokers.redis.ring import pick, redacted
from monument_ws.brokers.redis.sharded import SEEN, _Relay, tagged, untagged
from monument_ws.cli import cli
from monument_ws.client import Client, Message
from monument_ws.protocol.errors import ConfigError
from tests.conftest import DEADLINE, Peer, eventually, welcomed
from tests.test_cli import free_port


class RedisServer:
    """One redis-server of the test's own, on a fixed free port so it can come back there."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        # Popen only spawns (no wait); a plain handle can be killed from the sync teardown.
        self.proc = subprocess.Popen(  # noqa: ASYNC220
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                r = aioredis.from_url(self.url)
                await r.ping()
                await r.aclose()
                return
            except (OSError, aioredis.ConnectionError):
                await asyncio.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        """kill -9: the server and its data are gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def signal(self, number: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(number)

    async def keys(self, pattern: str = "*") -> set[str]:
        r = aioredis.from_url(self.url)
        try:
            return {k.decode() if isinstance(k, bytes) else k for k in await r.keys(pattern)}
        finally:
            await r.aclose()


def needs_redis_server() -> None:
    """Skip (in CI: fail) without a redis-server to start."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed: install it to run the shard tests")


@pytest.fixture
async def shards() -> AsyncIterator[list[RedisServer]]:
    """Three redis-servers of this test's own."""
    needs_redis_server()
    servers = [RedisServer() for _ in range(3)]
    try:
        for server in servers:
            await server.start()
        yield servers
    finally:
        for server in servers:
            server.kill()


App = tuple[str, MonumentWS]


@pytest.fixture
async def apps(shards: list[RedisServer], aiohttp_server: Any) -> Any:
    """``await apps()``: an application on a real port with a sharded broker over ``shards``;
    returns its ws:// URL and plugin. (``shards`` first: the servers stop before them.)"""

    async def start() -> App:
        app = web.Application()
        plugin = monument_ws.setup(
            app,
            bus=EventBus("shards"),
            websocket=True,
            upgrade_rate=0,
            health=True,
            broker=",".join(server.url for server in shards),
            channels={"*": {"publish": "anyone", "presence": True}},
        )
        server = await aiohttp_server(app)
        return str(server.make_url("/ws")).replace("http://", "ws://"), plugin

    return start


def named_on(urls: list[str], shard: int, stem: str) -> str:
    """The first ``<stem>-<n>`` that hashes onto ``shards[shard]``."""
    return next(f"{stem}-{n}" for n in range(1000) if pick(urls, f"{stem}-{n}") == shard)


async def open_peer(session: aiohttp.ClientSession, url: str) -> Peer:
    return await welcomed(await session.ws_connect(url, protocols=("monument.v1",)))


async def test_channels_spread_over_every_shard_and_cross_processes(apps, shards):
    """One channel per shard: its history stream, offsets, idempotency keys and presence are in
    that shard's Redis only, and a publication made on one process reaches a subscriber on the
    other through it."""
    (url_a, _a), (url_b, plugin_b) = await apps(), await apps()
    urls = [server.url for server in shards]
    channels = [named_on(urls, i, "room") for i in range(3)]
    received: list[Message] = []
    async with Client(url_a) as subscriber, Client(url_b) as publisher:
        for channel in channels:
            await subscriber.subscribe(channel, received.append, label="a")
        for channel in channels:
            await publisher.publish(channel, "say", channel, idempotency_key=f"k-{channel}")
            await plugin_b.publish(channel, "say", f"{channel} from the server")
        await eventually(lambda: len(received) == 6, "every publication on the other process")
    assert sorted((m.channel, m.data, m.offset) for m in received) == sorted(
        [(c, c, 1) for c in channels] + [(c, f"{c} from the server", 2) for c in channels]
    )
    for i, server in enumerate(shards):
        keys = await server.keys("monument_ws:*")
        for j, channel in enumerate(channels):
            kinds = {"stream", "meta", "idem"}
            mine = {f"monument_ws:{kind}:{channel}" for kind in kinds}
            assert (mine <= keys) == (i == j), (i, channel, keys)
            assert (f"monument_ws:presence:{channel}" in keys) == (i == j)


async def test_a_shard_killed_and_restarted(apps, shards):
    """kill -9 one shard: the other shards' channels go on; what needs the dead one is refused
    with unavailable; readiness names it; once it is back its channels recover and a subscriber
    gets what is published after the restart."""
    (url_a, plugin_a), (url_b, plugin_b) = await apps(), await apps()
    urls = [server.url for server in shards]
    doomed, alive = named_on(urls, 0, "c"), named_on(urls, 1, "c")
    received: list[Message] = []
    resubscribed: list[Any] = []
    async with (
        Client(url_a, call_timeout=DEADLINE) as subscriber,
        aiohttp.ClientSession() as session,
    ):
        subscriber.on("ws:resubscribed", resubscribed.append)
        await subscriber.subscribe(doomed, received.append)
        await subscriber.subscribe(alive, received.append)
        await plugin_b.publish(doomed, "say", "before")
        await eventually(lambda: [m.data for m in received] == ["before"], "the first one")

        shards[0].kill()
        await eventually(lambda: plugin_a.broker.down and plugin_b.broker.down, "noticed")
        assert plugin_b.broker.down == (urls[0],)
        async with session.get(
            url_b.replace("ws://", "http://").replace("/ws", "/health/ready")
        ) as r:
            assert r.status == 200
            assert await r.json() == {
                "ready": True,
                "broker": True,
                "draining": False,
                "down": [urls[0]],
            }
        # the other shards serve as before
        await plugin_b.publish(alive, "say", "during")
        await eventually(lambda: [m.data for m in received][-1:] == ["during"], "the live one")
        # what needs the dead shard is refused, never acknowledged and lost
        with pytest.raises(Unavailable):
            await plugin_b.publish(doomed, "say", "lost")
        peer = await open_peer(session, url_b)
        other = named_on(urls, 0, "d")
        requests = [
            {"event": "ws:publish", "data": {"channel": doomed, "event": "x", "data": 1}},
            {"event": "ws:subscribe", "data": {"channel": other}},
            {"event": "ws:presence", "data": {"channel": doomed}},
            {"event": "ws:history", "data": {"channel": doomed}},
        ]
        for n, request in enumerate(requests):
            answer = await peer.request({**request, "id": n})
            assert answer.get("error", {}).get("code") == "unavailable", answer
        await peer.close()

        await shards[0].start()  # empty: it lost every channel it held
        await eventually(lambda: not plugin_a.broker.down and not plugin_b.broker.down, "back")
        await eventually(lambda: len(resubscribed) == 1, "the resubscribe after the restart")
        assert resubscribed[0]["channel"] == doomed
        assert resubscribed[0]["recovered"] is False
        await plugin_b.publish(doomed, "say", "after")
        await eventually(lambda: [m.data for m in received][-1:] == ["after"], "the new one")
        assert [m.data for m in received] == ["before", "during", "after"]


async def test_send_to_kick_and_broadcast_across_shards(apps, shards):
    """Clients whose ids hash onto each shard, held by one process: the other sends to each,
    kicks one, and -- with a shard down -- still broadcasts (received once) and kicks."""
    (url_a, _a), (_url_b, plugin_b) = await apps(), await apps()
    urls = [server.url for server in shards]
    async with aiohttp.ClientSession() as session:
        peers: dict[int, Peer] = {}
        for _ in range(60):
            if len(peers) == 3:
                break
            peer = await open_peer(session, url_a)
            shard = pick(urls, peer.client_id)
            if shard in peers:
                await peer.close()
            else:
                peers[shard] = peer
        assert sorted(peers) == [0, 1, 2]
        for shard, peer in peers.items():  # each registered on its client id's shard only
            key = f"monument_ws:client:{peer.client_id}"
            await registered(shards[shard], key)
            for other in shards:
                assert (key in await other.keys()) == (other is shards[shard])
        for shard, peer in peers.items():
            assert await plugin_b.send_to(peer.client_id, "hello", shard)
            assert await peer.recv() == {"event": "hello", "data": shard}
        assert not await plugin_b.send_to("nobody-here", "hello")

        await plugin_b.kick(client_id=peers[0].client_id, reason="bye")
        assert await close_of(peers.pop(0)) == (4409, "bye")

        shards[2].kill()
        await eventually(lambda: plugin_b.broker.down == (urls[2],), "noticed")
        await plugin_b.broadcast("news", "all")
        assert await peers[1].recv() == {"event": "news", "data": "all"}
        assert await peers[2].recv() == {"event": "news", "data": "all"}
        await plugin_b.broadcast("news", "not you", exclude=peers[2].client_id)
        assert await peers[1].recv() == {"event": "news", "data": "not you"}
        # one copy each, and none for the excluded client: the next frame answers the ping
        for peer in (peers[1], peers[2]):
            await peer.send({"event": "ws:ping", "id": "fence"})
            assert (await peer.recv())["event"] == "ws:ping"
        with pytest.raises(Unavailable):  # its registry entry is on the dead shard
            await plugin_b.send_to(peers[2].client_id, "hello")
        await plugin_b.kick(client_id=peers[1].client_id, reason="bye")
        assert await close_of(peers[1]) == (4409, "bye")


async def close_of(peer: Peer) -> tuple[int, str]:
    """Read until the close frame; its code and reason as the frame says them (the socket's
    own close_code can read 1006 when the server hangs up before the client's reply)."""
    while True:
        msg = await peer.ws.receive(timeout=DEADLINE)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            return int(msg.data), str(msg.extra)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg


async def registered(server: RedisServer, key: str) -> None:
    """Poll ``server`` until it has ``key``, failing after a generous deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while key not in await server.keys():
        assert loop.time() < deadline, f"{key} never appeared"
        await asyncio.sleep(0.05)


def test_the_url_list_in_every_form_of_configuration(monkeypatch):
    """Code, environment and the command line take the comma-separated list; a bad URL in it
    is a one-line configuration error naming the key."""
    two = "redis://127.0.0.1:7001/0,redis://127.0.0.1:7002/0"
    assert Config(broker=" redis://127.0.0.1:7001/0 , redis://127.0.0.1:7002/0").broker == two
    assert Config(broker=two.split(",")).broker == two  # type: ignore[arg-type]
    assert Config.load(env={"MONUMENT_WS_BROKER": two}).broker == two
    broker = from_url(two)
    assert isinstance(broker, ShardedRedisBroker)
    assert [shard.url for shard in broker.shards] == two.split(",")
    for bad, says in [
        ("redis://127.0.0.1:7001/0,http://x", "unknown broker URL 'http://x'"),
        ("redis://127.0.0.1:7001/0,", "unknown broker URL ''"),
        ("redis://h:port/0,redis://h2/0", "bad broker URL 'redis://h:port/0'"),
        ("redis://h1/0,redis://h1/0", "listed twice"),
        ("memory://,redis://h1/0", "unknown broker URL 'memory://'"),
    ]:
        with pytest.raises(ConfigError, match="broker") as refused:
            Config.load({"broker": bad})
        assert says in str(refused.value)
        assert "\n" not in str(refused.value)
        result = CliRunner().invoke(cli, ["run", "--broker", bad])
        assert result.exit_code == 2, result.output
        assert says in result.output
        assert "Traceback" not in result.output


def test_adding_a_shard_moves_about_a_quarter_of_the_channels_onto_it_only():
    """Rendezvous hashing: a fourth shard takes about 1/4 of the names, every one from the
    old shards onto the new one; removing it puts them back where they were."""
    three = ["redis://h1:6379/0", "redis://h2:6379/0", "redis://h3:6379/0"]
    four = [*three, "redis://h4:6379/0"]
    names = [f"chat:{n}" for n in range(4000)]
    before = {name: three[pick(three, name)] for name in names}
    after = {name: four[pick(four, name)] for name in names}
    moved = [name for name in names if before[name] != after[name]]
    assert all(after[name] == four[3] for name in moved)
    assert 0.2 < len(moved) / len(names) < 0.3
    assert {pick(three, name) for name in names} == {0, 1, 2}
    assert pick(list(reversed(three)), "chat:1") == 2 - pick(three, "chat:1")  # order-free
    assert redacted("redis://:secret@h1:6379/0") == "redis://:***@h1:6379/0"
    assert redacted("rediss://user:secret@h1/0") == "rediss://user:***@h1/0"


def test_copies_from_several_shards_are_handed_on_once():
    """A broadcast or control message comes once per shard; the relay passes the first on,
    remembering a bounded number of ids; untagged ones pass as they are."""
    heard: list[bytes] = []

    class Owner:
        class listener:  # stands in for a Listener
            deliver_control = heard.append

    relay = _Relay(Owner())  # type: ignore[arg-type]
    tag, payload = tagged(b'{"kick":1}')
    assert untagged(payload) == (tag, b'{"kick":1}')
    assert untagged(b"#not hex at all!\nx") == (None, b"#not hex at all!\nx")
    for _ in range(3):
        relay.deliver_control(payload)
    relay.deliver_control(b"plain")
    assert heard == [b'{"kick":1}', b"plain"]
    for n in range(SEEN + 10):
        relay.deliver_control(tagged(str(n).encode())[1])
    assert len(relay._seen) == SEEN


def test_the_shard_load_test_runs_and_delivers_everything(tmp_path):
    """bench/shards.py, shrunk: every publication reaches every subscriber (figures are not
    asserted: they belong to docs/scaling.md)."""
    needs_redis_server()
    out = tmp_path / "shards.json"
    subprocess.run(
        [sys.executable, "bench/shards.py", "--shards", "2", "--processes", "2",
         "--channels", "4", "--fanout", "3", "--rate", "100", "--seconds", "1",
         "--json", str(out)],
        cwd=Path(__file__).resolve().parent.parent, check=True, timeout=120,
        capture_output=True,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["published"] > 0
    assert result["deliveries"] == result["expected"] == result["published"] * 3


async def test_a_process_starts_while_a_shard_is_down(apps, shards):
    """A shard that does not answer at start: the process starts anyway, serves the other
    shards' channels, refuses that shard's, and serves them once it answers."""
    urls = [server.url for server in shards]
    shards[1].kill()
    url_a, plugin_a = await apps()
    assert plugin_a.broker.down == (urls[1],)
    dead, alive = named_on(urls, 1, "s"), named_on(urls, 2, "s")
    received: list[Message] = []
    async with Client(url_a, call_timeout=DEADLINE) as client:
        await client.subscribe(alive, received.append)
        with pytest.raises(Unavailable):
            await client.subscribe(dead, received.append)
        await plugin_a.publish(alive, "say", 1)
        await shards[1].start()
        await eventually(lambda: not plugin_a.broker.down, "the shard reached")
        await client.subscribe(dead, received.append)
        await plugin_a.publish(dead, "say", 2)
        await eventually(lambda: [m.data for m in received] == [1, 2], "both")


async def test_no_shard_answering_fails_the_start(shards):
    """With every shard down a sharded broker does not start: Unavailable naming them."""
    for server in shards:
        server.kill()
    broker = ShardedRedisBroker([server.url for server in shards])
    with pytest.raises(Unavailable, match="cannot reach any broker shard"):
        await broker.start()


async def test_a_hanging_shard_is_reported_and_refused_until_it_answers(shards):
    """A shard that hangs (SIGSTOP: connections stay open, nothing answers) is noticed by the
    pings: reported down, its channels refused at once while the others work; after SIGCONT
    it serves again."""
    urls = [server.url for server in shards]
    broker = ShardedRedisBroker(urls, probe_interval=0.2, probe_timeout=2.0)
    stuck, fine = named_on(urls, 0, "h"), named_on(urls, 1, "h")
    await broker.start()
    try:
        shards[0].signal(signal.SIGSTOP)
        await eventually(lambda: broker.down == (urls[0],), "the hang noticed")
        assert broker.healthy
        with pytest.raises(Unavailable, match="shard"):
            await broker.publish(stuck, "e", 1, history_size=10, history_ttl=60)
        assert await broker.publish(fine, "e", 1, history_size=10, history_ttl=60) == (
            1,
            (await broker.history(fine, 0, None)).epoch,
        )
        shards[0].signal(signal.SIGCONT)
        await eventually(lambda: broker.down == (), "answering again")
        offset, _ = await broker.publish(stuck, "e", 2, history_size=10, history_ttl=60)
        assert offset == 1
    finally:
        shards[0].signal(signal.SIGCONT)
        await broker.stop()


async def test_a_client_on_a_hanging_shard_is_registered_without_a_command_to_it(shards):
    """A client whose id hashes onto a shard that hangs connects without a registry write
    to it (which would only wait for the socket timeout): the shard counts it, and writes it
    once it answers again; the entry of one that leaves meanwhile is left to expire."""
    urls = [server.url for server in shards]
    broker = ShardedRedisBroker(urls, probe_interval=0.2, probe_timeout=2.0)
    staying, leaving = named_on(urls, 0, "c"), named_on(urls, 0, "d")
    await broker.start()
    stuck = broker.shards[0]
    sent: list[str] = []
    redis = stuck._connection.redis
    execute = redis.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]).upper())
        return await execute(*args, **options)

    redis.execute_command = counted  # type: ignore[method-assign]
    try:
        shards[0].signal(signal.SIGSTOP)
        await eventually(lambda: broker.down == (urls[0],), "the hang noticed")
        await broker.register_client(staying)
        await broker.register_client(leaving)
        await broker.unregister_client(leaving)
        assert [c for c in sent if c != "PING"] == []
        assert stuck.holds(staying)
        assert not stuck.holds(leaving)
        shards[0].signal(signal.SIGCONT)
        await eventually(lambda: broker.down == (), "answering again")
        await registered(shards[0], f"monument_ws:client:{staying}")
        assert f"monument_ws:client:{leaving}" not in await shards[0].keys()
    finally:
        shards[0].signal(signal.SIGCONT)
        await broker.stop()


async def test_adding_a_shard_moves_a_channel_whose_recovery_then_says_not_recovered(shards):
    """Two shards, then the same two and a third: a channel that hashes onto the new one
    starts again there (offset 1, a new epoch); a recovery from its old position is not
    complete (recovered: false once); a channel that stays keeps its history."""
    urls = [server.url for server in shards]
    moving = next(f"m-{n}" for n in range(1000) if pick(urls, f"m-{n}") == 2)
    staying = next(f"s-{n}" for n in range(1000) if pick(urls, f"s-{n}") != 2)
    before = ShardedRedisBroker(urls[:2])
    await before.start()
    try:
        positions = {}
        for channel in (moving, staying):
            for data in (1, 2):
                positions[channel] = await before.publish(
                    channel, "e", data, history_size=10, history_ttl=60
                )
    finally:
        await before.stop()
    after = ShardedRedisBroker(urls)
    await after.start()
    try:
        offset, epoch = positions[moving]
        assert not (await after.history(moving, offset, epoch)).complete
        assert await after.publish(moving, "e", 3, history_size=10, history_ttl=60) == (
            1,
            (await after.history(moving, 0, None)).epoch,
        )
        offset, epoch = positions[staying]
        assert (await after.history(staying, offset, epoch)).complete
        assert (await after.publish(staying, "e", 3, history_size=10, history_ttl=60))[0] == 3
        assert f"monument_ws:stream:{moving}" in await shards[pick(urls[:2], moving)].keys()
    finally:
        await after.stop()
