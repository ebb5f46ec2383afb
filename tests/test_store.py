"""Durable channels: a PostgreSQL store behind channels whose namespace says ``persist: true``.

Every test runs a real server over real sockets against a real PostgreSQL, in a schema of its
own (the ``pg_schema`` fixture). The outage tests put a TCP proxy of their own between the store
and PostgreSQL and cut it: the shared PostgreSQL is never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp import web

import monument_ws
from monument_ws import EventBus
from monument_ws.brokers.memory import MemoryBroker
from monument_ws.protocol.errors import ConfigError
from monument_ws.stores.postgres import PostgresStore
from tests.conftest import DEADLINE, POSTGRES_URL, Peer, eventually, welcomed
from tests.test_cli import free_port
from tests.test_cluster import own_redis  # noqa: F401 - the fixture of a killable redis-server


def persisted(schema: str, **options: Any) -> dict[str, Any]:
    """Settings with a store in ``schema`` and ``log:*`` persisted, 10 kept by the broker."""
    return {
        "store": POSTGRES_URL,
        "store_schema": schema,
        "channels": {
            "log:*": {"persist": True, "history_size": 10, "publish": "anyone", **options},
            "chat:*": {"publish": "anyone"},
        },
    }


async def subscribe(peer: Peer, channel: str, since: dict[str, Any] | None = None) -> Any:
    """Subscribe; returns (publications pushed before the reply, the reply's data)."""
    data: dict[str, Any] = {"channel": channel}
    if since is not None:
        data["since"] = since
    await peer.send({"event": "ws:subscribe", "id": "s", "data": data})
    pushed: list[dict[str, Any]] = []
    while True:
        frame = await peer.recv()
        if frame.get("id") == "s":
            assert frame["event"] == "ws:subscribe", frame
            return pushed, frame["data"]
        if frame.get("channel") == channel and "offset" in frame:
            pushed.append(frame)


async def start_app(aiohttp_client: Any, broker: Any = None, **settings: Any) -> Any:
    """A server of its own bus (several in one test): (test client, plugin)."""
    app = web.Application()
    plugin = monument_ws.setup(
        app,
        bus=EventBus("store-test"),
        websocket=True,
        upgrade_rate=0,
        broker=broker,
        **settings,
    )
    return await aiohttp_client(app), plugin


async def test_500_missed_publications_recover_from_the_store_past_a_window_of_10(
    make_server, connect, pg_schema
):
    """A subscriber away while 500 are published gets all 500, in order, recovered: true,
    though the broker keeps 10; the burst is written in batches, not one transaction each."""
    client, ws = await make_server(**persisted(pg_schema))
    peer = await connect(client)
    _, first = await subscribe(peer, "log:a")
    assert first["offset"] == 0  # a position before the first publication
    await peer.close()

    offsets = await asyncio.gather(*(ws.publish("log:a", "line", {"n": n}) for n in range(500)))
    assert sorted(offsets) == list(range(1, 501))
    assert ws.durable is not None
    assert ws.durable.store.writer.batches < 100

    again = await connect(client)
    pushed, reply = await subscribe(again, "log:a", {"offset": 0, "epoch": first["epoch"]})
    assert reply == {"channel": "log:a", "offset": 500, "epoch": first["epoch"], "recovered": True}
    assert [frame["offset"] for frame in pushed] == list(range(1, 501))
    by_offset = dict(zip(offsets, range(500), strict=True))
    assert all(frame["data"] == {"n": by_offset[frame["offset"]]} for frame in pushed)
    assert all(frame["event"] == "line" for frame in pushed)


async def test_a_ws_publish_is_acknowledged_with_its_stored_offset_and_reaches_subscribers(
    make_server, connect, pg_schema
):
    """ws:publish to a persisted channel answers with the offset the store gave; live
    subscribers get it with that offset; the row is in the database."""
    client, _ = await make_server(**persisted(pg_schema))
    listener = await connect(client)
    _, position = await subscribe(listener, "log:b")
    sender = await connect(client)
    reply = await sender.request(
        {"event": "ws:publish", "id": 1, "data": {"channel": "log:b", "event": "hi", "data": [1]}}
    )
    assert reply["data"]["offset"] == 1
    assert await listener.recv() == {"event": "hi", "channel": "log:b", "data": [1], "offset": 1}
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        row = await connection.fetchrow(
            f'SELECT channel, epoch, "offset", event, data, published_at FROM "{pg_schema}".publications'
        )
    finally:
        await connection.close()
    assert row is not None
    assert (
        row["channel"],
        row["epoch"],
        row["offset"],
        json.loads(row["event"]),
        json.loads(row["data"]),
    ) == (
        "log:b",
        position["epoch"],
        1,
        "hi",
        [1],
    )
    assert row["published_at"] is not None


async def test_recovery_survives_a_new_broker_and_a_new_server_on_the_same_store(
    aiohttp_client, pg_schema
):
    """A memory broker's restart loses its history and epoch; a server that starts anew on the
    same store still recovers a client's position, from the store."""
    client, ws = await start_app(aiohttp_client, MemoryBroker(), **persisted(pg_schema))
    peer = await welcomed(await client.ws_connect("/ws", protocols=("monument.v1",)))
    _, position = await subscribe(peer, "log:c")
    for n in range(3):
        await ws.publish("log:c", "line", n)
    assert [(await peer.recv())["offset"] for _ in range(3)] == [1, 2, 3]
    await peer.close()
    await client.close()  # the server, its broker and its store stop

    client, ws = await start_app(aiohttp_client, MemoryBroker(), **persisted(pg_schema))
    for n in range(3, 30):
        await ws.publish("log:c", "line", n)
    peer = await welcomed(await client.ws_connect("/ws", protocols=("monument.v1",)))
    pushed, reply = await subscribe(peer, "log:c", {"offset": 3, "epoch": position["epoch"]})
    assert reply == {
        "channel": "log:c",
        "offset": 30,
        "epoch": position["epoch"],
        "recovered": True,
    }
    assert [frame["data"] for frame in pushed] == list(range(3, 30))


async def test_recovery_survives_a_redis_restart_that_lost_everything(
    aiohttp_client,
    pg_schema,
    own_redis,  # noqa: F811
):
    """Redis killed and restarted without persistence forgets offsets and epochs: the positions
    of persisted channels are the store's, so a client's ``since`` still recovers."""
    from monument_ws.brokers.redis import RedisBroker

    await own_redis()
    broker = RedisBroker(own_redis.url, prefix="store-test", backoff_max=0.2)
    client, ws = await start_app(aiohttp_client, broker, **persisted(pg_schema))
    peer = await welcomed(await client.ws_connect("/ws", protocols=("monument.v1",)))
    _, position = await subscribe(peer, "log:r")
    for n in range(5):
        await ws.publish("log:r", "line", n)
    assert [(await peer.recv())["offset"] for _ in range(5)] == [1, 2, 3, 4, 5]
    await peer.close()

    own_redis.kill()
    await eventually(lambda: not broker.healthy, "the broker noticing Redis is gone")
    await own_redis()
    await eventually(lambda: broker.healthy, "the broker reconnecting")
    for n in range(5, 12):
        await ws.publish("log:r", "line", n)

    peer = await welcomed(await client.ws_connect("/ws", protocols=("monument.v1",)))
    pushed, reply = await subscribe(peer, "log:r", {"offset": 2, "epoch": position["epoch"]})
    assert reply == {
        "channel": "log:r",
        "offset": 12,
        "epoch": position["epoch"],
        "recovered": True,
    }
    assert [frame["data"] for frame in pushed] == list(range(2, 12))


async def test_retention_deletes_by_count_and_by_age_but_keeps_positions(
    make_server, connect, pg_schema
):
    """persist_size keeps the newest per channel; persist_ttl drops older ones (measured from
    a given time, not waited for). A position older than what is kept recovers false; the
    channel's epoch and offset stay."""
    settings = persisted(pg_schema)
    settings["channels"]["keep:*"] = {"persist": True, "persist_size": 5, "history_size": 0}
    settings["channels"]["age:*"] = {"persist": True, "persist_ttl": 60, "history_size": 0}
    client, ws = await make_server(**settings)
    for n in range(20):
        await ws.publish("keep:x", "e", n)
        await ws.publish("age:x", "e", n)
        await ws.publish("log:forever", "e", n)
    assert ws.durable is not None
    store = ws.durable.store
    assert await store.prune(ws.durable.retention, 3) == 15  # nothing is old yet
    assert await store.prune(ws.durable.retention, 3, now=time.time() + 3600) == 20

    peer = await connect(client)
    _, position = await subscribe(peer, "keep:x")
    assert position["offset"] == 20
    pushed, reply = await subscribe(peer, "keep:x", {"offset": 15, "epoch": position["epoch"]})
    assert reply["recovered"] is True
    assert [f["data"] for f in pushed] == [15, 16, 17, 18, 19]
    _, reply = await subscribe(peer, "keep:x", {"offset": 14, "epoch": position["epoch"]})
    assert reply["recovered"] is False
    _, age = await subscribe(peer, "age:x")
    _, reply = await subscribe(peer, "age:x", {"offset": 19, "epoch": age["epoch"]})
    assert (reply["offset"], reply["recovered"]) == (20, False)
    _, forever = await subscribe(peer, "log:forever")
    pushed, reply = await subscribe(peer, "log:forever", {"offset": 0, "epoch": forever["epoch"]})
    assert reply["recovered"] is True
    assert len(pushed) == 20


class Proxy:
    """A TCP proxy between the store and PostgreSQL that a test cuts and restores."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def url(self) -> str:
        parts = urlsplit(POSTGRES_URL)
        netloc = parts.netloc.rsplit("@", 1)
        auth = netloc[0] + "@" if len(netloc) == 2 else ""
        return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{self.port}"))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


@pytest.fixture
async def proxy(pg_schema: str) -> Any:
    parts = urlsplit(POSTGRES_URL)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    await proxy.start()
    yield proxy
    with contextlib.suppress(Exception):
        await proxy.cut()


async def test_postgresql_lost_mid_stream_loses_nothing_acknowledged(
    make_server, connect, pg_schema, proxy
):
    """The database goes away while a client publishes: publishes to persisted channels get
    unavailable, other channels keep working, /health/ready says the store is down; once it
    is back publishing resumes, and every acknowledged publication is recovered, in order."""
    settings = persisted(pg_schema)
    settings["store"] = proxy.url()
    settings["store_timeout"] = 2.0
    client, ws = await make_server(health=True, **settings)
    assert ws.durable is not None
    ws.durable.store._probe_interval = 0.05
    sender = await connect(client)
    chat = await connect(client)
    await subscribe(chat, "chat:room")
    listener = await connect(client)
    _, position = await subscribe(listener, "log:s")

    acknowledged: list[int] = []
    refused = 0
    ids = iter(range(1_000_000))

    async def publish(channel: str, n: Any) -> Any:
        frame = {
            "event": "ws:publish",
            "id": next(ids),
            "data": {"channel": channel, "event": "n", "data": n},
        }
        return await sender.request(frame)

    async def stream(count: int) -> None:
        nonlocal refused
        for n in range(count):
            reply = await publish("log:s", n)
            if "error" in reply:
                assert reply["error"]["code"] == "unavailable", reply
                refused += 1
            else:
                acknowledged.append(reply["data"]["offset"])

    await stream(20)
    await proxy.cut()
    await stream(5)
    assert refused >= 4  # the first may have been on its way when the cut came
    assert (await publish("chat:room", "still here"))["data"]["offset"] == 1
    assert (await chat.recv())["data"] == "still here"
    ready = await client.get("/health/ready")
    assert ready.status == 503
    assert (await ready.json())["store"] is False

    await proxy.start()
    await eventually(lambda: ws.durable is not None and ws.durable.store.healthy, "the store back")
    assert (await client.get("/health/ready")).status == 200
    before = len(acknowledged)
    await stream(20)
    assert len(acknowledged) == before + 20

    again = await connect(client)
    pushed, reply = await subscribe(again, "log:s", {"offset": 0, "epoch": position["epoch"]})
    assert reply["recovered"] is True
    recovered = [frame["offset"] for frame in pushed]
    assert recovered == sorted(recovered)
    assert set(acknowledged) <= set(recovered)


async def test_a_full_write_queue_answers_unavailable_at_once(
    make_server, connect, pg_schema, proxy
):
    """A database that does not answer cannot grow memory: beyond store_queue waiting
    publications, publishes fail with unavailable at once; the rest fail once the calls time
    out, or succeed once the database answers again."""
    settings = persisted(pg_schema)
    settings["store"] = proxy.url()
    settings["store_queue"] = 5
    settings["store_timeout"] = 1.0
    _, ws = await make_server(**settings)
    await proxy.cut()
    results = await asyncio.gather(
        *(ws.publish("log:q", "e", n) for n in range(20)), return_exceptions=True
    )
    full = [r for r in results if isinstance(r, monument_ws.Unavailable) and "full" in str(r)]
    assert len(full) >= 14
    assert all(isinstance(r, monument_ws.Unavailable) for r in results)
    await proxy.start()
    await eventually(lambda: ws.durable is not None and ws.durable.store.healthy, "the store back")
    assert await ws.publish("log:q", "e", "after") == 1


class OwnPostgres:
    """A PostgreSQL of one test's own (initdb into a temporary folder, on a free port) that it
    stops and starts again; run as the postgres user when the test runs as root (PostgreSQL
    refuses root). Only the processes it started are signalled, by PID."""

    def __init__(self, folder: Path, bin_dir: str) -> None:
        self.folder = folder
        self.bin = bin_dir
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        if self.user is not None:
            shutil.chown(self.folder, self.user)
        subprocess.run(
            [f"{self.bin}/initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U",
             "postgres", "--no-sync"],
            check=True, capture_output=True, user=self.user, timeout=DEADLINE * 3,
        )  # fmt: skip

    async def start(self) -> None:
        # Popen only spawns (no wait); the handle is stopped by PID from any teardown.
        self.process = subprocess.Popen(  # noqa: ASYNC220
            [f"{self.bin}/postgres", "-D", str(self.folder / "data"), "-p", str(self.port),
             "-k", str(self.folder), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=self.user,
        )  # fmt: skip
        for _ in range(200):
            try:
                connection = await asyncpg.connect(self.url, timeout=1)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                await asyncio.sleep(0.05)
                continue
            await connection.close()
            return
        raise AssertionError("the test's own PostgreSQL did not start")

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open connections are cut, as in a database restart."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=DEADLINE * 3)


@pytest.fixture
async def own_postgres() -> AsyncIterator[OwnPostgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("PostgreSQL's initdb is not installed (scripts/ensure-postgres)")
        pytest.skip("PostgreSQL's initdb is not installed: run scripts/ensure-postgres")
    # Not under pytest's tmp_path: its parents are private to root, the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="monument-ws-pg-"))
    own = OwnPostgres(folder, os.path.dirname(found[-1]))
    try:
        own.init()
        await own.start()
        yield own
    finally:
        own.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def test_postgresql_stopped_and_restarted_mid_stream(make_server, connect, own_postgres):
    """PostgreSQL stops while a client publishes and a subscriber listens: publishes to the
    persisted channel get unavailable, ready says store false; once it is back everything
    resumes, the subscriber got every acknowledged publication live, and a recovery from the
    start holds every one too, in order."""
    settings = persisted("mwstest_restart")
    settings["store"] = own_postgres.url
    client, ws = await make_server(health=True, **settings)
    assert ws.durable is not None
    ws.durable.store._probe_interval = 0.05
    sender = await connect(client)
    listener = await connect(client)
    _, position = await subscribe(listener, "log:pg")
    acknowledged: list[int] = []
    refused = 0

    async def stream(count: int) -> None:
        nonlocal refused
        for n in range(count):
            data = {"channel": "log:pg", "event": "n", "data": n}
            frame = {"event": "ws:publish", "id": n, "data": data}
            reply = await sender.request(frame)
            if "error" in reply:
                assert reply["error"]["code"] == "unavailable", reply
                refused += 1
            else:
                acknowledged.append(reply["data"]["offset"])

    await stream(10)
    own_postgres.stop()
    await stream(5)
    assert refused == 5
    assert (await (await client.get("/health/ready")).json())["store"] is False
    await own_postgres.start()
    await eventually(lambda: ws.durable is not None and ws.durable.store.healthy, "the store back")
    await stream(10)
    assert len(acknowledged) == 20
    assert acknowledged == sorted(acknowledged)

    live: list[int] = []
    while len(live) < len(acknowledged):
        live.append((await listener.recv())["offset"])
    assert live == acknowledged
    again = await connect(client)
    pushed, reply = await subscribe(again, "log:pg", {"offset": 0, "epoch": position["epoch"]})
    assert reply["recovered"] is True
    assert [frame["offset"] for frame in pushed] == acknowledged


MIGRATE = """
import asyncio, sys
import asyncpg
from monument_ws.stores.postgres.schema import migrate

async def main():
    connection = await asyncpg.connect(sys.argv[1])
    try:
        print(await migrate(connection, sys.argv[2]))
    finally:
        await connection.close()

asyncio.run(main())
"""


async def test_processes_starting_together_migrate_the_schema_once(pg_schema):
    """Four processes migrating one new schema at once all succeed; each version is applied
    once, and migrating again changes nothing."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE,
            POSTGRES_URL,
            pg_schema,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = [await asyncio.wait_for(proc.communicate(), DEADLINE * 3) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {b"2"}
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        versions = await connection.fetch(f'SELECT version FROM "{pg_schema}".schema_version')
    finally:
        await connection.close()
    assert [row["version"] for row in versions] == [1, 2]
    store = PostgresStore(POSTGRES_URL, schema=pg_schema)
    await store.start()
    await store.stop()


async def test_bad_input_to_a_persisted_channel_is_refused_without_harm(
    make_server, connect, pg_schema
):
    """Data JSON cannot hold, a NUL in an excluded client id, a bad schema name: refused
    before anything is written; NULs in an event name or data are stored and replayed as
    sent; the channel keeps working."""
    client, ws = await make_server(**persisted(pg_schema))
    with pytest.raises(TypeError):
        await ws.publish("log:bad", "e", {1, 2})
    with pytest.raises(ValueError, match="NUL"):
        await ws.publish("log:bad", "e", 1, exclude="a\x00b")
    assert await ws.publish("log:bad", "e\x00", "\x00 in data too") == 1
    assert ws.durable is not None
    history = await ws.durable.history("log:bad", 0, None)
    _, position = await subscribe(await connect(client), "log:bad")
    pushed, reply = await subscribe(
        await connect(client), "log:bad", {"offset": 0, "epoch": position["epoch"]}
    )
    assert reply["recovered"] is True
    assert [(f["event"], f["data"]) for f in pushed] == [("e\x00", "\x00 in data too")]
    assert history.offset == 1
    with pytest.raises(ValueError, match="store_schema"):
        PostgresStore(POSTGRES_URL, schema='x"; DROP TABLE y; --')


def test_persist_without_a_store_is_a_configuration_error():
    """A namespace that persists needs a store: said at setup, naming how to set one."""
    with pytest.raises(ConfigError, match="no store is set"):
        monument_ws.setup(
            web.Application(), bus=EventBus("x"), channels={"log:*": {"persist": True}}
        )


def test_the_missing_extra_names_the_postgres_extra():
    """Without asyncpg the store is one line naming the extra (the CLI test runs it for real)."""
    code = (
        "import sys; sys.modules['asyncpg'] = None\n"
        "from monument_ws import stores\n"
        "try:\n    stores.check_url('postgresql://x@y/z')\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "MissingExtra the store postgresql:// needs asyncpg, which is not installed: "
        "pip install 'monument-ws[postgres]'"
    )


async def test_a_publisher_outside_the_server_writes_to_the_store_too(
    make_server, connect, pg_schema, redis_prefix
):
    """A Publisher given the servers' broker and store publishes to a persisted channel through
    the store: a subscriber on the server gets it live with the store's offset and recovers it."""
    from monument_ws.brokers.redis import RedisBroker
    from monument_ws.publisher import Publisher
    from tests.conftest import REDIS_URL

    settings = persisted(pg_schema)
    client, _ = await make_server(broker=RedisBroker(REDIS_URL, prefix=redis_prefix), **settings)
    peer = await connect(client)
    _, position = await subscribe(peer, "log:p")
    async with Publisher(REDIS_URL, broker_prefix=redis_prefix, **settings) as publisher:
        assert await publisher.publish("log:p", "from-cron", {"n": 1}) == 1
    frame = await peer.recv()
    assert (frame["event"], frame["offset"]) == ("from-cron", 1)
    pushed, reply = await subscribe(peer, "log:p", {"offset": 0, "epoch": position["epoch"]})
    assert reply["recovered"] is True
    assert [f["data"] for f in pushed] == [{"n": 1}]


async def test_a_sender_left_out_is_left_out_of_a_recovery_from_the_store(
    make_server, connect, pg_schema
):
    """exclude_sender on a persisted channel: the store keeps the excluded client id, so the
    sender resuming with since does not get its own publication back; others do."""
    client, _ = await make_server(**persisted(pg_schema))
    sender = await connect(client)
    _, position = await subscribe(sender, "log:x")
    data = {"channel": "log:x", "event": "e", "data": 1, "exclude_sender": True}
    reply = await sender.request({"event": "ws:publish", "id": 7, "data": data})
    assert reply["data"]["offset"] == 1
    since = {"offset": 0, "epoch": position["epoch"]}
    pushed, reply = await subscribe(sender, "log:x", since)
    assert (pushed, reply["recovered"]) == ([], True)
    other = await connect(client)
    pushed, _ = await subscribe(other, "log:x", since)
    assert [f["offset"] for f in pushed] == [1]


async def test_ws_history_pages_a_persisted_channel_from_the_store_past_the_window(
    make_server, connect, pg_schema
):
    """250 publications, the broker keeping 10: ws:history pages all 250 back and forth from
    the store (latest first page, then before/after), with the store's epoch; a channel that
    is not persisted still pages from the broker's window (100 by default)."""
    client, ws = await make_server(**persisted(pg_schema))
    for n in range(250):
        await ws.publish("log:pages", "line", n)
    for n in range(120):
        await ws.publish("chat:pages", "line", n)
    peer = await connect(client)

    async def page(**data: Any) -> dict[str, Any]:
        reply = await peer.request({"event": "ws:history", "id": "h", "data": data})
        assert reply["event"] == "ws:history", reply
        result: dict[str, Any] = reply["data"]
        return result

    latest = await page(channel="log:pages", limit=100)
    assert [p["offset"] for p in latest["publications"]] == list(range(151, 251))
    assert (latest["offset"], latest["more"]) == (250, True)
    seen = [p["offset"] for p in latest["publications"]]
    before = latest["publications"][0]["offset"]
    while True:
        older = await page(channel="log:pages", limit=100, before=before, epoch=latest["epoch"])
        seen[:0] = [p["offset"] for p in older["publications"]]
        if not older["more"]:
            break
        before = older["publications"][0]["offset"]
    assert seen == list(range(1, 251))
    forward = await page(channel="log:pages", limit=100, after=200)
    assert [p["data"] for p in forward["publications"]] == list(range(200, 250))
    assert forward["more"] is False

    window = await page(channel="chat:pages", limit=100, before=100)
    assert [p["offset"] for p in window["publications"]] == list(range(21, 100))
    assert window["more"] is False  # the broker's window of 100 holds 21..120, no more


async def test_idempotent_publishes_to_a_persisted_channel_are_written_once(
    aiohttp_client, pg_schema
):
    """A key the store already holds (a retry on another process, after a restart of the
    broker) and the same key twice in one batch: each written once, every answer the first
    publication's position; other keys and keyless publishes are written as usual."""
    settings = persisted(pg_schema)
    _, a = await start_app(aiohttp_client, **settings)
    first = await a.publish_position("log:idem", "line", 1, idempotency_key="k1")
    _, b = await start_app(aiohttp_client, broker=MemoryBroker(), **settings)
    assert await b.publish_position("log:idem", "line", 1, idempotency_key="k1") == first
    burst = await asyncio.gather(
        *(b.publish_position("log:idem", "line", 2, idempotency_key="k2") for _ in range(20)),
        b.publish_position("log:idem", "line", 3),
    )
    assert len(set(burst[:20])) == 1
    assert burst[20][0] != burst[0][0]
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        rows = await connection.fetch(
            f'SELECT "offset", idempotency_key FROM "{pg_schema}".publications '
            "WHERE channel = 'log:idem' ORDER BY \"offset\""
        )
    finally:
        await connection.close()
    assert [(r["offset"], r["idempotency_key"]) for r in rows] == [
        (first[0], "k1"),
        *sorted([(burst[0][0], "k2"), (burst[20][0], None)]),
    ]


def test_only_a_database_that_cannot_be_reached_marks_the_store_unhealthy() -> None:
    """A statement refused (an error answer, arguments the driver cannot encode, e.g. an
    offset past 64 bits) is Unavailable for its caller alone; readiness turns 503 only for a
    database that cannot be reached or used."""
    from asyncpg.exceptions._base import DataError as ArgumentError

    from monument_ws.stores.postgres.store import _database_down

    assert _database_down(OSError("connection refused"))
    assert _database_down(TimeoutError())
    assert _database_down(asyncpg.PostgresConnectionError("gone"))
    assert _database_down(asyncpg.exceptions.AdminShutdownError("shutting down"))
    assert not _database_down(ArgumentError("value out of int64 range"))
    assert not _database_down(asyncpg.exceptions.UniqueViolationError("duplicate key"))


async def test_a_publication_the_broker_was_not_handed_still_reaches_live_subscribers_in_order(
    make_server, connect, pg_schema, redis_prefix
):
    """A publish committed to the store whose announcement to Redis failed is acknowledged; the
    next one announced shows the gap to every process, which fills it from the store: live
    subscribers on both processes get 1, 2, 3, 4 once each, in order, and no resubscribe."""
    from monument_ws.brokers.redis import RedisBroker
    from monument_ws.protocol.errors import Unavailable
    from tests.conftest import REDIS_URL

    settings = persisted(pg_schema)
    servers = [
        await make_server(broker=RedisBroker(REDIS_URL, prefix=redis_prefix), **settings)
        for _ in range(2)
    ]
    peers = [await connect(client) for client, _ in servers]
    for peer in peers:
        await subscribe(peer, "log:g")
    ws = servers[0][1]
    assert ws.durable is not None
    broker = ws.durable.broker
    assert await ws.publish("log:g", "line", 1) == 1

    async def down(*args: Any, **kwargs: Any) -> None:
        raise Unavailable("Redis did not answer")

    broker.publish_at = down
    assert await ws.publish("log:g", "line", 2) == 2  # committed, acknowledged, not announced
    del broker.publish_at  # the class's again
    assert await ws.publish("log:g", "line", 3) == 3
    assert await ws.publish("log:g", "line", 4) == 4
    for peer in peers:
        frames = [await peer.recv() for _ in range(4)]
        assert [(f["event"], f["offset"], f["data"]) for f in frames] == [
            ("line", n, n) for n in range(1, 5)
        ]
    assert await ws.publish("log:g", "line", 5) == 5
    for peer in peers:
        assert (await peer.recv())["offset"] == 5  # nothing twice, no ws:resubscribe between


async def test_a_gap_the_store_no_longer_holds_asks_live_subscribers_to_resubscribe(
    make_server, connect, pg_schema, redis_prefix
):
    """The publication the broker was not handed is gone from the store too (retention) when
    the gap shows: the live subscriber gets what follows, then a ws:resubscribe."""
    from monument_ws.brokers.redis import RedisBroker
    from monument_ws.protocol.errors import Unavailable
    from tests.conftest import REDIS_URL

    client, ws = await make_server(
        broker=RedisBroker(REDIS_URL, prefix=redis_prefix), **persisted(pg_schema)
    )
    peer = await connect(client)
    await subscribe(peer, "log:h")
    assert ws.durable is not None
    broker = ws.durable.broker
    assert await ws.publish("log:h", "line", 1) == 1

    async def down(*args: Any, **kwargs: Any) -> None:
        raise Unavailable("Redis did not answer")

    broker.publish_at = down
    assert await ws.publish("log:h", "line", 2) == 2
    del broker.publish_at
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(
            f'DELETE FROM "{pg_schema}".publications WHERE channel = $1 AND "offset" = 2', "log:h"
        )
    finally:
        await connection.close()
    assert await ws.publish("log:h", "line", 3) == 3
    frames = [await peer.recv() for _ in range(3)]
    assert [f.get("offset") for f in frames[:2]] == [1, 3]
    assert frames[2] == {"event": "ws:resubscribe", "data": {"channel": "log:h"}}
