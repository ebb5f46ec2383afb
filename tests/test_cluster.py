"""Many processes, one system: server processes joined by a real Redis."""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner

from monument_ws import Unavailable
from monument_ws.cli import cli
from monument_ws.client import Client, Message
from monument_ws.protocol import backoff
from monument_ws.publisher import Publisher
from tests.conftest import DEADLINE, REDIS_URL, eventually
from tests.test_cli import free_port, read_banner


class Server:
    """`python -m monument_ws run` (the template app) as a real subprocess.

    ``command`` replaces ``python -m monument_ws`` (e.g. another environment's
    ``monument-ws``), ``cwd`` the directory it runs in.
    """

    def __init__(
        self,
        *args: str,
        command: Sequence[str] = (sys.executable, "-m", "monument_ws"),
        cwd: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.args = args
        self.command = command
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> "Server":
        self.proc = await asyncio.create_subprocess_exec(
            *self.command, "run", "--port", str(self.port), *self.args,
            cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return self
            except OSError:
                if loop.time() > deadline or self.proc.returncode is not None:
                    raise AssertionError("the server did not start") from None
                await asyncio.sleep(0.05)

    async def stop(self) -> int | None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), DEADLINE)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode if self.proc else None


@pytest.fixture
async def servers(redis_prefix) -> AsyncIterator[Any]:
    started: list[Server] = []

    async def start(*extra: str, broker: str = REDIS_URL) -> Server:
        server = Server(
            "--broker", broker, "--broker-prefix", redis_prefix, "--secret", "s", *extra
        )
        started.append(await server.start())
        return server

    yield start
    for server in started:
        await server.stop()


async def test_publish_on_one_process_reaches_the_other_exactly_once(servers):
    """A subscriber on A receives a publish made on B once; concurrent publishers: one order for all."""
    a, b = await servers(), await servers()
    on_a: list[Message] = []
    on_b: list[Message] = []
    async with Client(a.url) as alice, Client(b.url) as bob:
        await alice.subscribe("chat", on_a.append)
        await bob.subscribe("chat", on_b.append)
        await bob.publish("chat", "message", "hello from B")
        await eventually(lambda: len(on_a) == 1 and len(on_b) == 1, "the first message on both")
        await asyncio.gather(
            *(alice.publish("chat", "message", f"a{i}") for i in range(40)),
            *(bob.publish("chat", "message", f"b{i}") for i in range(40)),
        )
        await eventually(lambda: len(on_a) == 81 and len(on_b) == 81, "81 messages on both")
        assert [(m.offset, m.data) for m in on_a] == [(m.offset, m.data) for m in on_b]
        assert [m.offset for m in on_a] == list(range(1, 82))


async def test_exclude_self_across_processes_and_in_recovery(servers):
    """A publish with exclude_self made on B reaches A's subscriber but not its sender; the
    sender, back on A with its client id and since, does not get it replayed either."""
    a, b = await servers(), await servers()
    on_a: list[Message] = []
    on_b: list[Message] = []
    async with Client(a.url) as alice, Client(b.url) as bob:
        await alice.subscribe("chat", on_a.append)
        await bob.subscribe("chat", on_b.append)
        await bob.publish("chat", "message", "not to bob", exclude_self=True)
        await alice.publish("chat", "message", "to all")
        await eventually(lambda: len(on_a) == 2 and len(on_b) == 1, "the publications")
        assert [m.data for m in on_a] == ["not to bob", "to all"]
        assert [m.data for m in on_b] == ["to all"]
        since = {"offset": 0, "epoch": bob.subscriptions["chat"].epoch}
        resume = bob.resume
    async with aiohttp.ClientSession() as session:
        url = f"{a.url}?resume={resume}"
        async with session.ws_connect(url, protocols=("monument.v1",)) as ws:
            welcome = await ws.receive_json(timeout=DEADLINE)
            assert welcome["data"]["resumed"] is True
            await ws.send_json(
                {"event": "ws:subscribe", "id": 1, "data": {"channel": "chat", "since": since}}
            )
            frames = [await ws.receive_json(timeout=DEADLINE) for _ in range(2)]
    assert frames[0]["data"] == "to all"
    assert frames[1]["id"] == 1
    assert frames[1]["data"]["recovered"] is True


async def test_send_to_a_client_on_another_process(servers, redis_prefix):
    """send_to(client_id) from outside the servers reaches the process holding that client."""
    a = await servers()
    async with Client(a.url) as alice:
        got: list[Any] = []
        alice.on("dm", got.append)
        async with Publisher(REDIS_URL, broker_prefix=redis_prefix) as publisher:
            assert alice.client_id is not None
            assert await publisher.send_to(alice.client_id, "dm", "psst") is True
            assert await publisher.send_to("no-such-client", "dm", "x") is False
        await eventually(lambda: got == ["psst"], "the direct message")


async def numsub_reaches(r: aioredis.Redis, channel: str, count: int) -> None:
    """Poll PUBSUB NUMSUB until ``channel`` has ``count`` subscribers, failing after DEADLINE."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        now = dict(await r.pubsub_numsub(channel))[channel.encode()]
        if now == count:
            return
        if loop.time() > deadline:
            raise AssertionError(f"PUBSUB NUMSUB {channel} stayed {now}, expected {count}")
        await asyncio.sleep(0.02)


async def test_a_process_holds_redis_subscriptions_only_for_its_channels(servers, redis_prefix):
    """PUBSUB NUMSUB: one subscription for a used channel, none for others, none after leaving."""
    a = await servers()
    r = aioredis.from_url(REDIS_URL)
    try:
        async with Client(a.url) as alice:
            await alice.subscribe("chat", lambda m: None)
            x, y = f"{redis_prefix}:ch:chat", f"{redis_prefix}:ch:news"
            assert dict(await r.pubsub_numsub(x, y)) == {x.encode(): 1, y.encode(): 0}
            await alice.unsubscribe("chat")
            # The last local subscriber left: the process unsubscribes its pub/sub
            # connection (redis-py does not wait for Redis's confirmation, so poll).
            await numsub_reaches(r, x, 0)
    finally:
        await r.aclose()


async def test_publish_command_and_publisher_refuse_memory(servers, redis_prefix):
    """`monument-ws publish` reaches subscribers through Redis; with memory:// it explains why not."""
    a = await servers()
    got: list[Message] = []
    async with Client(a.url) as alice:
        await alice.subscribe("chat", got.append)
        result = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            [
                "publish",
                "chat",
                "message",
                '{"from": "cron"}',
                "--broker",
                REDIS_URL,
                "--broker-prefix",
                redis_prefix,
            ],
        )
        assert result.exit_code == 0, result.output
        assert "offset 1" in result.output
        await eventually(lambda: len(got) == 1, "the published message")
        assert got[0].data == {"from": "cron"}
    refused = CliRunner().invoke(cli, ["publish", "chat", "message", "--broker", "memory://"])
    assert refused.exit_code == 2
    assert "lives inside one server process" in refused.output


async def test_workers_share_one_port(redis_prefix):
    """--workers 2 serves one port from two processes; a publish reaches subscribers on both."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monument_ws", "run", "--port", str(port), "--workers", "2",
        "--broker", REDIS_URL, "--broker-prefix", redis_prefix, "--secret", "s",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    r = aioredis.from_url(REDIS_URL)
    clients: list[Client] = []
    try:
        _, banner = await read_banner(proc)  # printed once, when the first worker listens
        assert banner[-1] == "  workers:  2"
        assert f"  broker:   {REDIS_URL}" in banner
        url = f"ws://127.0.0.1:{port}/ws"
        for _ in range(int(DEADLINE * 20)):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        # The port answers once the first worker listens; the second may still be starting,
        # so connect (at least 20 clients) until connections have landed on both.
        received: dict[int, list[Message]] = {}
        nodes: set[bytes | str] = set()
        for i in range(int(DEADLINE * 20)):
            if i >= 20:
                if len(nodes) == 2:
                    break
                await asyncio.sleep(0.05)
            client = Client(url)
            await client.connect()
            clients.append(client)
            received[i] = []
            await client.subscribe("chat", received[i].append)
            nodes |= await r.smembers(f"{redis_prefix}:client:{client.client_id}")
        assert len(nodes) == 2, "connections should land on both workers"
        await clients[0].publish("chat", "message", "to everyone")
        await eventually(lambda: all(len(r) == 1 for r in received.values()), "all 20 subscribers")
    finally:
        for client in clients:
            await client.close()
        await r.aclose()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), DEADLINE) == 0


def test_workers_refused_with_the_memory_broker():
    """--workers with memory:// is a usage error that says why."""
    result = CliRunner().invoke(cli, ["run", "--workers", "2", "--broker", "memory://"])
    assert result.exit_code == 2
    assert "needs a shared broker" in result.output


@pytest.fixture
async def own_redis() -> AsyncIterator[Any]:
    """A redis-server of this test's own on a free port (the shared one is never stopped)."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed: install it to run the outage test")
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    async def start() -> None:
        # Popen only spawns (no wait); a plain handle can be killed from the sync teardown.
        proc = subprocess.Popen(  # noqa: ASYNC220
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        procs.append(proc)
        for _ in range(200):
            try:
                r = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
                await r.ping()
                await r.aclose()
                return
            except (OSError, aioredis.ConnectionError):
                await asyncio.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill() -> None:
        procs[-1].kill()
        procs[-1].wait()

    def send_signal(number: int) -> None:
        procs[-1].send_signal(number)

    start.kill = kill  # type: ignore[attr-defined]
    start.signal = send_signal  # type: ignore[attr-defined]
    start.url = f"redis://127.0.0.1:{port}/0"  # type: ignore[attr-defined]
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_redis_outage_is_survived(own_redis):
    """Kill Redis mid-stream and restart it: the server lives, publishes fail with unavailable
    meanwhile, and every publish that got an offset reached the subscriber."""
    await own_redis()
    server = await Server("--broker", own_redis.url, "--secret", "s").start()
    received: list[Message] = []
    resubscribed: list[Any] = []
    try:
        async with Client(server.url, call_timeout=20) as client:
            client.on("ws:resubscribed", resubscribed.append)
            await client.subscribe("chat", received.append)
            acknowledged: list[str] = []
            refused: list[str] = []

            async def publish(label: str) -> None:
                try:
                    await client.publish("chat", "message", label)
                    acknowledged.append(label)
                except Unavailable:
                    refused.append(label)

            for i in range(20):
                await publish(f"before-{i}")
            own_redis.kill()
            for i in range(5):
                await publish(f"during-{i}")
            assert refused == [f"during-{i}" for i in range(5)]
            await own_redis()
            # the server reconnects by itself; its sockets are told to resubscribe (history was lost)
            await eventually(lambda: len(resubscribed) == 1, "the resubscribe after the outage")
            assert resubscribed == [{"channel": "chat", "recovered": False}]
            for i in range(20):
                await publish(f"after-{i}")
            await eventually(
                lambda: {m.data for m in received} >= set(acknowledged),
                "every acknowledged publish",
            )
            assert [m.data for m in received] == acknowledged
        assert server.proc is not None
        assert server.proc.returncode is None
    finally:
        assert await server.stop() == 0


async def test_a_dropped_subscription_recovers_what_it_missed_from_history(own_redis, monkeypatch):
    """Only the subscription connections drop (Redis keeps its data): the broker reconnects,
    writes its client registrations again and delivers from history what was published while
    it was away -- in order, once each, without asking anyone to resubscribe."""
    from monument_ws.brokers.redis import RedisBroker
    from tests.test_brokers import Recorder, publish

    # Every reconnect waits long enough for the publications below to be made meanwhile.
    monkeypatch.setattr(backoff, "delay", lambda *args, **kwargs: 0.3)
    await own_redis()
    reader, publisher = RedisBroker(own_redis.url), RedisBroker(own_redis.url)
    recorder = Recorder(reader)
    r = aioredis.from_url(own_redis.url)
    await reader.start()
    await publisher.start()
    try:
        await reader.subscribe("news")
        await reader.history("news", 0, None)  # as the hub does when a socket subscribes
        await reader.register_client("c1")
        await publish(publisher, "news", 1)
        await eventually(lambda: len(recorder.publications) == 1, "the live publication")

        await r.delete("monument_ws:client:c1")  # as if it expired during the outage
        assert await r.client_kill_filter(_type="pubsub") == 2  # the reader's and publisher's
        await eventually(lambda: not reader.healthy, "the reader noticing")
        for data in (2, 3):
            await publish(publisher, "news", data)

        await eventually(lambda: len(recorder.publications) == 3, "the recovery")
        assert [p.offset for p in recorder.publications] == [1, 2, 3]
        assert recorder.gaps == []
        assert reader.healthy
        assert reader.reconnects == 1
        assert await r.smembers("monument_ws:client:c1") == {reader.node.encode()}
        await publish(publisher, "news", 4)
        await eventually(lambda: len(recorder.publications) == 4, "live again")
        assert [p.offset for p in recorder.publications] == [1, 2, 3, 4]
    finally:
        await r.aclose()
        await publisher.stop()
        await reader.stop()


async def test_a_redis_broker_keeps_epochs_only_of_channels_it_receives(redis_prefix):
    """Publishing to (and reading) channels this process does not subscribe to leaves nothing
    behind per channel; a subscribed channel's epoch is kept until it is unsubscribed."""
    from monument_ws.brokers.redis import RedisBroker
    from tests.test_brokers import publish

    broker = RedisBroker(REDIS_URL, prefix=redis_prefix)
    await broker.start()
    try:
        for i in range(20):
            await publish(broker, f"elsewhere-{i}", i)
            await broker.history(f"elsewhere-{i}", 0, None)
        assert broker._subscriber._epochs == {}
        await broker.subscribe("here")
        epoch = (await broker.history("here", 0, None)).epoch
        assert broker._subscriber._epochs == {"here": epoch}
        await broker.unsubscribe("here")
        assert broker._subscriber._epochs == {}
    finally:
        await broker.stop()
