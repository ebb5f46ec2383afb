"""Structured logs: socket_id and client_id on every line about a socket, as text or JSON."""

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

import pytest

from monument_ws import logs
from monument_ws.client import Client
from tests.conftest import DEADLINE, Connect
from tests.test_cli import free_port


class Lines(logging.Handler):
    """Keeps each formatted line, through the same filter and formatter `run` installs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(logs.SocketFilter())
        self.setFormatter(logs.JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines():
    handler = Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(level)


async def test_every_line_about_a_socket_names_it(make_server, connect: Connect, lines):
    """An app handler's own log line and the server's traceback line both carry the socket's
    ids; a line logged outside any socket carries nulls."""
    client, ws = await make_server()
    app_log = logging.getLogger("myapp")

    @ws.handler("hello")
    async def hello(message, socket):
        app_log.info("hello from %s", message.data)
        return "hi"

    @ws.handler("boom")
    async def boom(message, socket):
        raise RuntimeError("kaboom")

    peer = await connect(client)
    await peer.request({"event": "hello", "id": 1, "data": "alice"})
    await peer.request({"event": "boom", "id": 2})
    logging.getLogger("myapp").info("between requests")
    (socket,) = list(ws.hub)

    (hello_line,) = [line for line in lines if line["message"] == "hello from alice"]
    assert hello_line["socket_id"] == socket.id
    assert hello_line["client_id"] == peer.client_id
    assert hello_line["logger"] == "myapp"
    (boom_line,) = [line for line in lines if "'boom' failed" in str(line["message"])]
    assert (boom_line["socket_id"], boom_line["client_id"]) == (socket.id, peer.client_id)
    assert "kaboom" in str(boom_line["exc"])
    (outside,) = [line for line in lines if line["message"] == "between requests"]
    assert (outside["socket_id"], outside["client_id"]) == (None, None)


def test_text_format_shows_the_ids():
    """The text formatter prints ``[socket_id client_id]``, ``-`` outside a socket."""
    handler = logging.StreamHandler()
    handler.addFilter(logs.SocketFilter())
    formatter = logging.Formatter(logs.TEXT_FORMAT)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hi", None, None)
    handler.filter(record)
    assert formatter.format(record).endswith("x [- -] hi")
    tagged = logging.LogRecord("x", logging.INFO, __file__, 1, "hi", None, None)
    tagged.socket_id, tagged.client_id = "abc", "cid"
    handler.filter(tagged)
    assert formatter.format(tagged).endswith("x [abc cid] hi")


async def test_run_log_format_json_writes_json_lines(tmp_path: Path):
    """`monument-ws run --log-format json` writes only JSON objects to stderr, with the ids of
    the socket a line is about."""
    port = free_port()
    stderr = (tmp_path / "stderr").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monument_ws", "run", "--port", str(port), "--log-format", "json",
        stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
    )  # fmt: skip
    try:
        for _ in range(int(DEADLINE * 20)):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        async with Client(f"ws://127.0.0.1:{port}/ws") as client:
            await client.call("ws:ping")
            client_id = client.client_id
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), DEADLINE) == 0
        stderr.close()
    records = [json.loads(line) for line in (tmp_path / "stderr").read_text().splitlines()]
    assert records, "the server logged nothing"
    for record in records:
        assert {"time", "level", "logger", "message", "socket_id", "client_id"} <= set(record)
    assert any(record["client_id"] == client_id for record in records), records
    (banner,) = [r for r in records if r["message"].startswith("monument-ws ")]
    assert f"ws://127.0.0.1:{port}/ws" in banner["message"]
