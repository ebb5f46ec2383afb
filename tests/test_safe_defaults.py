"""Mistakes that explain themselves, and defaults that hold with several processes."""

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

import monument_ws
from monument_ws.bus import EventBus
from monument_ws.client import Client
from tests.conftest import DEADLINE, REDIS_URL
from tests.test_cli import free_port


async def why_not(url: str) -> str:
    """The message of the ConnectionLost the Python client raises connecting to ``url`` (its
    retries, if any, without waiting)."""

    async def no_wait(delay: float) -> None:
        pass

    with pytest.raises(monument_ws.ConnectionLost) as lost:
        await Client(url, sleep=no_wait).connect()
    return str(lost.value)


async def test_sockets_off_with_handlers_warns_once_and_the_client_says_404(
    aiohttp_client: Any, bus: EventBus, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    """Handlers and data providers without websocket=True: one start-up warning naming the
    setting; the client's error carries the URL and the HTTP status."""
    app = web.Application()
    ws = monument_ws.setup(app, bus=bus, plugs=str(tmp_path))
    ws.handler("echo")(lambda message, socket: message.data)
    bus.on("data:get:greeting", lambda event, **_: "hi")
    with caplog.at_level(logging.WARNING, logger="monument_ws"):
        client = await aiohttp_client(app)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "echo, data:get:greeting" in warnings[0]
    assert "websocket=True" in warnings[0]
    assert "--websocket true" in warnings[0]
    url = str(client.make_url("/ws"))
    assert await why_not(url) == (
        f"{url} answered HTTP 404, not a WebSocket upgrade "
        "(is websocket=True set on the server, and is the path right?)"
    )


async def test_sockets_off_with_nothing_to_serve_says_nothing(
    aiohttp_client: Any, bus: EventBus, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    """An app that only uses the ops endpoints is not warned about."""
    app = web.Application()
    monument_ws.setup(app, bus=bus, plugs=str(tmp_path / "missing"), health=True)
    with caplog.at_level(logging.WARNING, logger="monument_ws"):
        await aiohttp_client(app)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_plugs_folder_without_sockets_is_named(
    aiohttp_client: Any, bus: EventBus, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    (tmp_path / "hello.py").write_text("async def handle(message, socket):\n    return 1\n")
    app = web.Application()
    monument_ws.setup(app, bus=bus, plugs=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="monument_ws"):
        await aiohttp_client(app)
    assert [r.getMessage() for r in caplog.records if "plugs" in r.getMessage()]


async def test_nothing_listening_is_named_with_the_url() -> None:
    """No server at all: the error names the URL, the close code and the retries."""
    url = f"ws://127.0.0.1:{free_port()}/ws"
    assert await why_not(url) == f"could not connect to {url} (1006: no connection after 6 retries)"


async def test_a_refused_upgrade_with_another_status_is_named(make_server: Any) -> None:
    """A 503 (too many sockets from this address) is said as it is, without the 404 hint."""
    client, _ = await make_server(max_sockets_per_ip=1)
    first = await client.ws_connect("/ws")
    url = str(client.make_url("/ws"))
    assert await why_not(url) == f"{url} answered HTTP 503, not a WebSocket upgrade"
    await first.close()
    await asyncio.sleep(0)


async def wait_listening(port: int, proc: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if loop.time() > deadline or proc.returncode is not None:
                raise AssertionError("the server did not start") from None
            await asyncio.sleep(0.05)


async def stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), DEADLINE)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode


async def welcome(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.ws_connect(url) as ws:
        frame = await ws.receive_json(timeout=DEADLINE)
        assert frame["event"] == "ws:welcome"
        return dict(frame["data"])


async def test_workers_without_a_secret_share_a_generated_one(
    redis_prefix: str, tmp_path: Path
) -> None:
    """`run --workers 2` without --secret: a client resumes its client id on the other worker,
    and run says it generated the secret."""
    port = free_port()
    stderr = (tmp_path / "stderr").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monument_ws", "run", "--port", str(port), "--workers", "2",
        "--broker", REDIS_URL, "--broker-prefix", redis_prefix,
        stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
    )  # fmt: skip
    r = aioredis.from_url(REDIS_URL)
    try:
        await wait_listening(port, proc)
        url = f"ws://127.0.0.1:{port}/ws"
        key = f"{redis_prefix}:client:"
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url) as ws:
                first = (await ws.receive_json(timeout=DEADLINE))["data"]
                client_id, resume = first["client_id"], first["resume"]
                home = await r.smembers(key + client_id)
            assert len(home) == 1
            for _ in range(int(DEADLINE * 20)):
                async with session.ws_connect(f"{url}?resume={resume}") as ws:
                    again = (await ws.receive_json(timeout=DEADLINE))["data"]
                    assert (again["client_id"], again["resumed"]) == (client_id, True)
                    resume = again["resume"]
                    if await r.smembers(key + client_id) - home:
                        break
            else:
                pytest.fail("no reconnection landed on the other worker")
    finally:
        await r.aclose()
        assert await stop(proc) == 0
        stderr.close()
    logged = (tmp_path / "stderr").read_text()
    assert logged.count("generated one resume secret shared by the 2 workers") == 1


async def test_processes_with_different_secrets_warn_once(
    redis_prefix: str, tmp_path: Path
) -> None:
    """Two processes on one broker with different secrets: the first resume that does not verify
    logs one warning naming `secret`; the next ones do not."""
    procs: list[asyncio.subprocess.Process] = []
    ports = [free_port(), free_port()]
    files = [(tmp_path / f"stderr{i}").open("wb") for i in range(2)]
    try:
        for i, port in enumerate(ports):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "monument_ws", "run", "--port", str(port),
                "--broker", REDIS_URL, "--broker-prefix", redis_prefix, "--secret", f"key-{i}",
                stdout=asyncio.subprocess.DEVNULL, stderr=files[i],
            )  # fmt: skip
            procs.append(proc)
        for port, proc in zip(ports, procs, strict=True):
            await wait_listening(port, proc)
        async with aiohttp.ClientSession() as session:
            first = await welcome(session, f"ws://127.0.0.1:{ports[0]}/ws")
            for _ in range(3):
                other = await welcome(
                    session, f"ws://127.0.0.1:{ports[1]}/ws?resume={first['resume']}"
                )
                assert other["resumed"] is False
    finally:
        for proc in procs:
            await stop(proc)
        for file in files:
            file.close()
    logged = (tmp_path / "stderr1").read_text()
    assert logged.count("resume token did not verify") == 1, logged
    assert "processes sharing a broker must share `secret`" in logged
    assert "did not verify" not in (tmp_path / "stderr0").read_text()


async def start_run(port: int, *args: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monument_ws", "run", "--port", str(port), *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await wait_listening(port, proc)
    return proc


async def half_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that starts a request head and never finishes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    await writer.drain()
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (a reset too: it closed with our head unread)."""
    try:
        return await asyncio.wait_for(reader.read(), DEADLINE) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


async def test_run_closes_connections_whose_request_head_never_completes() -> None:
    """--header-timeout: 100 half-open connections, each trickling a header line, are all
    closed by the server; the server still answers afterwards."""
    port = free_port()
    proc = await start_run(port, "--header-timeout", "0.5")
    try:
        conns = [await half_open(port) for _ in range(100)]
        for _, writer in conns[:50]:
            writer.write(b"X-Trickle: 1\r\n")
        closed = await asyncio.gather(*(closed_by_server(reader) for reader, _ in conns))
        assert sum(closed) == 100
        for _, writer in conns:
            writer.close()
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/api/greeting") as response,
        ):
            assert response.status == 200
    finally:
        assert await stop(proc) == 0


@contextlib.asynccontextmanager
async def welcomed_20th(
    session: aiohttp.ClientSession, port: int
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """The socket that makes 20 connections from this address. wait_listening's probe may still
    count on a loaded machine (its close not yet seen by the server), so a refusal is retried
    until the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        try:
            ws = await session.ws_connect(f"ws://127.0.0.1:{port}/ws")
            break
        except aiohttp.ClientConnectionError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)
    async with ws:
        assert (await ws.receive_json(timeout=DEADLINE))["event"] == "ws:welcome"
        yield ws


async def test_run_refuses_connections_beyond_the_limit_per_address() -> None:
    """--max-connections-per-ip 20: from one address, connections beyond 20 open are closed at
    accept; once some close, new ones are served again (sockets count too)."""
    port = free_port()
    proc = await start_run(port, "--max-connections-per-ip", "20", "--header-timeout", "600")
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    extra: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        held += [await half_open(port) for _ in range(19)]
        async with aiohttp.ClientSession() as session, welcomed_20th(session, port):
            extra += [await half_open(port) for _ in range(30)]
            refused = await asyncio.gather(*(closed_by_server(reader) for reader, _ in extra))
            assert sum(refused) == 30
            for _, writer in extra:
                writer.close()
            for _, writer in held[:5]:
                writer.close()
            for _ in range(int(DEADLINE * 20)):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/api/greeting") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("a connection was still refused after five closed")
    finally:
        for _, writer in held + extra:
            writer.close()  # also when the test failed half-way: no socket outlives it
        assert await stop(proc) == 0
