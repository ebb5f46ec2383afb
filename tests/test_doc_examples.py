"""Every server example of docs/websockets.md runs exactly as the docs say, as its own process.

Each example is marked in the docs by an HTML comment on the line before its block,
``<!-- example: NAME -->``. For each one this module writes the block to a fresh directory as
``example.py``, starts the command its "Run it:" line gives (``monument-ws run example:app`` when
it has none; as ``python -m monument_ws``, on a free port) as a subprocess, waits until it
listens, and drives it over a real socket as a reader's client would, checking what its section
says it does. Every marked example needs a check here and every check a marked example, so an
example that is dropped, renamed or stops running fails the suite. All servers start together
(once per module) and are stopped by their pids.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monument_ws.client import Client
from tests import ss_client, sss_client
from tests.conftest import DEADLINE, chat_send_round_trip
from tests.owl_client import OwlPeer

DOCS = Path(__file__).resolve().parent.parent / "docs" / "websockets.md"
MARKED = re.compile(
    r"^<!-- example: ([a-z0-9-]+) -->\n```python\n(.*?)^```\n(?:\nRun it: `([^`]+)`)?",
    re.MULTILINE | re.DOTALL,
)
DEFAULT_COMMAND = "monument-ws run example:app"


@dataclass
class Example:
    name: str
    code: str
    command: str


def examples() -> dict[str, Example]:
    found: dict[str, Example] = {}
    for name, code, command in MARKED.findall(DOCS.read_text()):
        assert name not in found, f"two examples are marked {name!r}"
        found[name] = Example(name, code, command or DEFAULT_COMMAND)
    return found


def free_ports(n: int) -> list[int]:
    """n distinct free ports (all held until all are chosen)."""
    held = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)
    ports = [int(s.getsockname()[1]) for s in held]
    for s in held:
        s.close()
    return ports


@dataclass
class Server:
    """One example served by a `monument-ws run` subprocess."""

    example: Example
    directory: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def log(self) -> str:
        return (self.directory / "server.log").read_text(errors="replace")


def argv(example: Example, port: int, extra: list[str]) -> list[str]:
    """The docs' command as this venv runs it, with ``--port`` replaced by ``port``."""
    words = shlex.split(example.command)
    assert words[:2] == ["monument-ws", "run"], f"{example.name}: run it with {example.command!r}"
    rest = words[2:]
    if "--port" in rest:
        at = rest.index("--port")
        del rest[at : at + 2]
    return [sys.executable, "-m", "monument_ws", "run", *rest, "--port", str(port), *extra]


def start(example: Example, directory: Path, port: int, extra: list[str]) -> Server:
    directory.mkdir(parents=True)
    (directory / "example.py").write_text(example.code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONUMENT_WS_")}
    with open(directory / "server.log", "wb") as log:
        proc = subprocess.Popen(
            argv(example, port, extra),
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Server(example, directory, port, proc)


def wait_listening(servers: list[Server]) -> None:
    deadline = time.monotonic() + DEADLINE * 3  # every server starts at once on 2 shared cores
    waiting = list(servers)
    while waiting:
        for server in list(waiting):
            if server.proc.poll() is not None:
                pytest.fail(f"example {server.example.name} exited:\n{server.log}")
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
                waiting.remove(server)
            except OSError:
                pass
        if waiting and time.monotonic() > deadline:
            pytest.fail(f"not listening: {[s.example.name for s in waiting]}")
        time.sleep(0.05)


def stop(servers: list[Server]) -> None:
    for server in servers:
        if server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGTERM)
    for server in servers:
        try:
            server.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            os.kill(server.proc.pid, signal.SIGKILL)
            server.proc.wait()


Check = Callable[[list[Server], aiohttp.ClientSession], Awaitable[None]]
#: name -> (how many processes, the check)
CHECKS: dict[str, tuple[int, Check]] = {}


def check(name: str, processes: int = 1) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = (processes, fn)
        return fn

    return register


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Server]]]:
    found = examples()
    root = tmp_path_factory.mktemp("doc-examples")
    prefix = f"docs-{uuid.uuid4().hex[:12]}"
    plan = [(name, i) for name in found if name in CHECKS for i in range(CHECKS[name][0])]
    ports = free_ports(len(plan))
    started: dict[str, list[Server]] = {}
    every: list[Server] = []
    try:
        for (name, i), port in zip(plan, ports, strict=True):
            extra = ["--broker-prefix", prefix] if "redis://" in found[name].command else []
            server = start(found[name], root / f"{name}-{i}", port, extra)
            started.setdefault(name, []).append(server)
            every.append(server)
        wait_listening(every)
        yield started
    finally:
        stop(every)


def test_every_marked_example_has_a_check_and_every_check_an_example():
    text = DOCS.read_text()
    marked = examples()
    assert set(marked) == set(CHECKS), (
        f"marked without a check: {sorted(set(marked) - set(CHECKS))}; "
        f"checks without a marked example: {sorted(set(CHECKS) - set(marked))}"
    )
    # an unmarked server example would be skipped silently: every app-defining block is marked
    blocks = re.findall(r"^(.*)\n```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    unmarked = [code for before, code in blocks if "\napp = " in code and "example:" not in before]
    assert unmarked == [], "a python block defining app has no <!-- example: NAME --> marker"


async def welcomed(session: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[Any, Any]:
    ws = await session.ws_connect(url, **kw)
    welcome = await ws.receive_json(timeout=DEADLINE)
    assert welcome["event"] == "ws:welcome"
    return ws, welcome


@check("quick-start")
async def _quick_start(servers: list[Server], session: aiohttp.ClientSession) -> None:
    ws, _ = await welcomed(session, servers[0].ws_url)
    await ws.send_json({"event": "echo", "id": 1, "data": {"x": [1, 2]}})
    assert await ws.receive_json(timeout=DEADLINE) == {
        "event": "echo",
        "id": 1,
        "data": {"x": [1, 2]},
    }
    await ws.close()


@check("data-events")
async def _data_events(servers: list[Server], session: aiohttp.ClientSession) -> None:
    async with session.get(servers[0].base + "/api/user/3") as response:
        assert await response.json() == {"id": 3, "name": "Ada"}
    ws, _ = await welcomed(session, servers[0].ws_url)
    await ws.send_json({"event": "data:get:user", "id": 1, "data": {"id": 4}})
    reply = await ws.receive_json(timeout=DEADLINE)
    assert (reply["event"], reply["data"]) == ("data:set:user", {"id": 4, "name": "Ada"})
    await ws.close()


@check("live-data")
async def _live_data(servers: list[Server], session: aiohttp.ClientSession) -> None:
    watcher, _ = await welcomed(session, servers[0].ws_url)
    other, _ = await welcomed(session, servers[0].ws_url)
    await watcher.send_json({"event": "data:get:prices", "id": 1})
    assert await watcher.receive_json(timeout=DEADLINE) == {
        "event": "data:set:prices",
        "id": 1,
        "data": {"tea": 3},
    }
    async with session.put(servers[0].base + "/api/prices/tea", data="4") as response:
        assert await response.json() == {"tea": 4}
    assert await watcher.receive_json(timeout=DEADLINE) == {
        "event": "data:set:prices",
        "data": {"tea": 4},
    }
    await other.send_json({"event": "ws:ping", "id": "fence"})  # it never asked: no push first
    assert (await other.receive_json(timeout=DEADLINE))["event"] == "ws:ping"
    await watcher.send_json({"event": "ws:unwatch", "id": 2, "data": {"event": "data:get:prices"}})
    assert await watcher.receive_json(timeout=DEADLINE) == {
        "event": "ws:unwatch",
        "id": 2,
        "data": {"watched": True},
    }
    async with session.put(servers[0].base + "/api/prices/tea", data="5") as response:
        assert await response.json() == {"tea": 5}
    await watcher.send_json({"event": "ws:ping", "id": "fence"})
    assert (await watcher.receive_json(timeout=DEADLINE))["event"] == "ws:ping"
    await watcher.close()
    await other.close()


@check("handlers")
async def _handlers(servers: list[Server], session: aiohttp.ClientSession) -> None:
    ws, _ = await welcomed(session, servers[0].ws_url)
    await ws.send_json({"event": "countdown", "id": 1, "data": 3})
    frames = [await ws.receive_json(timeout=DEADLINE) for _ in range(4)]
    assert [f.get("data") for f in frames[:3]] == [3, 2, 1]
    assert frames[3] == {"event": "countdown", "id": 1, "end": True}
    await ws.send_json({"event": "admin", "id": 2})
    assert (await ws.receive_json(timeout=DEADLINE))["error"]["code"] == "forbidden"
    await ws.send_json({"event": "add", "id": 3, "data": [1, 2, 3]})
    assert await ws.receive_json(timeout=DEADLINE) == {"event": "add", "id": 3, "data": 6}
    await ws.close()


@check("server-calls")
async def _server_calls(servers: list[Server], session: aiohttp.ClientSession) -> None:
    async with Client(servers[0].ws_url) as client:
        client.perform("ask-name", lambda data: "Ada")
        assert await client.call("greet-me") == "Hello, Ada!"


@check("plugs")
async def _plugs(servers: list[Server], session: aiohttp.ClientSession) -> None:
    sender, _ = await welcomed(session, servers[0].ws_url)
    other, _ = await welcomed(session, servers[0].ws_url)
    await chat_send_round_trip(sender, other)
    await sender.close()
    await other.close()


@check("plugs-folder")
async def _plugs_folder(servers: list[Server], session: aiohttp.ClientSession) -> None:
    ws, _ = await welcomed(session, servers[0].ws_url)
    await ws.send_json({"event": "example", "id": 1, "data": "plugs"})
    assert await ws.receive_json(timeout=DEADLINE) == {
        "event": "example",
        "id": 1,
        "data": "Hello, plugs!",
    }
    await ws.close()


@check("passthrough")
async def _passthrough(servers: list[Server], session: aiohttp.ClientSession) -> None:
    ws, _ = await welcomed(session, servers[0].ws_url)
    await ws.send_json({"event": "login", "id": 1, "credentialsObj": {"user": "ada"}})
    assert await ws.receive_json(timeout=DEADLINE) == {
        "event": "login",
        "id": 1,
        "data": {"welcome": "ada"},
    }
    await ws.close()
    async with Client(servers[0].ws_url) as client:  # the Python client's extra= of the text
        reply = await client.call("login", extra={"credentialsObj": {"user": "ada"}})
        assert reply == {"welcome": "ada"}


@check("lifecycle")
async def _lifecycle(servers: list[Server], session: aiohttp.ClientSession) -> None:
    ws, welcome = await welcomed(session, servers[0].ws_url)
    line = f"{welcome['data']['client_id']} connected from 127.0.0.1"
    for _ in range(int(DEADLINE * 20)):  # the receiver logs it to run's stderr
        if line in servers[0].log:
            break
        await asyncio.sleep(0.05)
    assert line in servers[0].log
    await ws.close()


@check("channels")
async def _channels(servers: list[Server], session: aiohttp.ClientSession) -> None:
    ws, _ = await welcomed(session, servers[0].ws_url)
    await ws.send_json({"event": "ws:subscribe", "id": 1, "data": {"channel": "news"}})
    assert (await ws.receive_json(timeout=DEADLINE))["data"]["recovered"] is False
    async with session.post(servers[0].base + "/announce?title=hi") as response:
        assert await response.json() == {"offset": 1}
    assert await ws.receive_json(timeout=DEADLINE) == {
        "event": "article",
        "channel": "news",
        "data": {"title": "hi"},
        "offset": 1,
    }
    assert (await ws.receive_json(timeout=DEADLINE))["event"] == "notice"
    await ws.send_json({"event": "ws:subscribe", "id": 2, "data": {"channel": "room:1"}})
    assert (await ws.receive_json(timeout=DEADLINE))["error"]["code"] == "forbidden"
    await ws.close()


@check("history")
async def _history(servers: list[Server], session: aiohttp.ClientSession) -> None:
    """Three log entries, read back two at a time through the route and over ws:history."""
    base = servers[0].base
    for entry in ("left port", "fog", "land ho"):
        async with session.post(f"{base}/log", data=entry) as response:
            assert response.status == 200
    async with session.get(f"{base}/log") as response:
        page = await response.json()
    assert [p["data"] for p in page["publications"]] == ["fog", "land ho"]
    assert page["more"] is True
    async with session.get(f"{base}/log?before=2") as response:
        older = await response.json()
    assert older["publications"] == [{"event": "entry", "data": "left port", "offset": 1}]
    assert older["more"] is False
    reader, _ = await welcomed(session, servers[0].ws_url)
    await reader.send_json(
        {"event": "ws:history", "id": 1, "data": {"channel": "log:ship", "after": 1, "limit": 1}}
    )
    answer = await reader.receive_json(timeout=DEADLINE)
    assert answer["data"]["publications"] == [{"event": "entry", "data": "fog", "offset": 2}]
    assert answer["data"]["more"] is True
    await reader.close()


@check("exclude-sender")
async def _exclude_sender(servers: list[Server], session: aiohttp.ClientSession) -> None:
    """The mover's yield and a ws:publish with exclude_sender each reach only the other."""
    mover, _ = await welcomed(session, servers[0].ws_url)
    other, _ = await welcomed(session, servers[0].ws_url)
    for ws in (mover, other):
        await ws.send_json({"event": "ws:subscribe", "id": 1, "data": {"channel": "game:1"}})
        assert (await ws.receive_json(timeout=DEADLINE))["id"] == 1
    await mover.send_json({"event": "move", "id": 2, "data": "e4"})
    assert await mover.receive_json(timeout=DEADLINE) == {"event": "move", "id": 2, "data": None}
    assert (await other.receive_json(timeout=DEADLINE))["data"] == "e4"
    await other.send_json(
        {
            "event": "ws:publish",
            "id": 3,
            "data": {"channel": "game:1", "event": "move", "data": "e5", "exclude_sender": True},
        }
    )
    assert (await other.receive_json(timeout=DEADLINE))["data"]["offset"] == 2
    # The mover's next frame is the other's move: its own (offset 1) never came.
    assert (await mover.receive_json(timeout=DEADLINE))["offset"] == 2
    await other.send_json({"event": "ws:ping", "id": 4})
    assert (await other.receive_json(timeout=DEADLINE))["event"] == "ws:ping"
    await mover.close()
    await other.close()


@check("redis", processes=2)
async def _redis(servers: list[Server], session: aiohttp.ClientSession) -> None:
    """Two processes on one Redis: what a subscriber publishes on one reaches the other's."""
    first, second = servers
    here, _ = await welcomed(session, first.ws_url)
    there, _ = await welcomed(session, second.ws_url)
    for ws in (here, there):
        await ws.send_json({"event": "ws:subscribe", "id": 1, "data": {"channel": "chat:lobby"}})
        assert (await ws.receive_json(timeout=DEADLINE))["id"] == 1
    await there.send_json(
        {
            "event": "ws:publish",
            "id": 2,
            "data": {"channel": "chat:lobby", "event": "said", "data": "hi"},
        }
    )
    publication = await here.receive_json(timeout=DEADLINE)
    assert publication == {"event": "said", "channel": "chat:lobby", "data": "hi", "offset": 1}
    await here.close()
    await there.close()


@check("presence")
async def _presence(servers: list[Server], session: aiohttp.ClientSession) -> None:
    ws, _ = await welcomed(session, servers[0].ws_url)
    subscribe = {"channel": "room:1", "label": "Ada", "meta": {"a": 1}}
    await ws.send_json({"event": "ws:subscribe", "id": 1, "data": subscribe})
    await ws.receive_json(timeout=DEADLINE)
    async with session.get(servers[0].base + "/rooms/1/members") as response:
        listed = await response.json()
    assert listed["count"] == 1
    assert (listed["members"][0]["label"], listed["members"][0]["meta"]) == ("Ada", {"a": 1})
    await ws.close()


@check("modes")
async def _modes(servers: list[Server], session: aiohttp.ClientSession) -> None:
    ws, _ = await welcomed(session, servers[0].ws_url)
    await ws.send_json({"event": "admin", "id": 1})
    assert (await ws.receive_json(timeout=DEADLINE))["error"]["code"] == "forbidden"
    await ws.send_json({"event": "chat:send", "id": 2, "data": "hi"})
    allowed = await ws.receive_json(timeout=DEADLINE)  # let through; the app has no receiver
    assert (allowed["id"], allowed["error"]["code"]) == (2, "not_found")
    await ws.close()


@check("kick")
async def _kick(servers: list[Server], session: aiohttp.ClientSession) -> None:
    ws, welcome = await welcomed(session, servers[0].ws_url)
    client_id = welcome["data"]["client_id"]
    async with session.post(f"{servers[0].base}/admin/kick/{client_id}") as response:
        assert await response.json() == {"kicked": client_id}
    msg = await ws.receive(timeout=DEADLINE)
    assert (ws.close_code, msg.extra) == (4409, "removed by an admin")


@check("middleware")
async def _middleware(servers: list[Server], session: aiohttp.ClientSession) -> None:
    ws, welcome = await welcomed(session, servers[0].ws_url)
    assert (welcome["sender"], welcome["dt"]) == ("node-1", 1)
    await ws.send_json({"event": "admin:wipe", "id": 2})
    refused = await ws.receive_json(timeout=DEADLINE)
    assert (refused["id"], refused["error"]["code"], refused["dt"]) == (2, "forbidden", 2)
    await ws.close()


@check("peer-queues")
async def _peer_queues(servers: list[Server], session: aiohttp.ClientSession) -> None:
    """The section's client example (its second block) against its server example."""
    blocks = re.findall(r"^```python\n(.*?)^```", DOCS.read_text(), re.MULTILINE | re.DOTALL)
    (code,) = [c for c in blocks if "async def queue_round_trip" in c]
    namespace: dict[str, Any] = {"__name__": "docs_queue"}
    exec(compile(code, str(DOCS), "exec"), namespace)
    async with Client(servers[0].ws_url) as client:
        assert await namespace["queue_round_trip"](client) == ("hello", 12, 1)


@check("security")
async def _security(servers: list[Server], session: aiohttp.ClientSession) -> None:
    refused = await session.ws_connect(
        servers[0].ws_url, headers={"Authorization": "Bearer revoked"}
    )
    await refused.receive(timeout=DEADLINE)
    assert refused.close_code == 4401
    ws, welcome = await welcomed(session, servers[0].ws_url)
    assert welcome["data"]["stage"] == "anonymous"
    await ws.send_json({"event": "ws:auth", "id": 1, "data": {"stage": "init"}})
    assert (await ws.receive_json(timeout=DEADLINE))["data"]["stage"] == "challenge"
    answer = {"stage": "answer", "answer": "sesame", "user": "ada"}
    await ws.send_json({"event": "ws:auth", "id": 2, "data": answer})
    assert (await ws.receive_json(timeout=DEADLINE))["data"] == {
        "stage": "authenticated",
        "data": {"hello": "ada"},
    }
    await ws.close()
    # The section's client example, sign_in, against the same server.
    blocks = re.findall(r"^```python\n(.*?)^```", DOCS.read_text(), re.MULTILINE | re.DOTALL)
    (code,) = [c for c in blocks if "async def sign_in" in c]
    namespace: dict[str, Any] = {"__name__": "docs_sign_in"}
    exec(compile(code, str(DOCS), "exec"), namespace)
    assert await namespace["sign_in"](servers[0].ws_url) == "authenticated"


@check("operating")
async def _operating(servers: list[Server], session: aiohttp.ClientSession) -> None:
    base = servers[0].base
    ws, _ = await welcomed(session, servers[0].ws_url)
    async with session.get(base + "/metrics") as response:
        assert "\nmonument_ws_sockets_open 1.0\n" in await response.text()
    await ws.close()
    async with session.get(base + "/health/ready") as response:
        assert (response.status, await response.json()) == (
            200,
            {"ready": True, "broker": True, "draining": False},
        )
    async with session.get(base + "/_monument/admin") as response:
        assert response.status == 200


@check("monument")
async def _monument(servers: list[Server], session: aiohttp.ClientSession) -> None:
    """monument's own frames, unchanged: a data event without an id, a passthrough event."""
    async with session.get(servers[0].base + "/people") as response:
        people = await response.json()
    assert [p["name"] for p in people] == ["Ada", "Grace"]
    ws, welcome = await welcomed(session, servers[0].ws_url)
    await ws.send_json({"event": "data:get:people"})
    assert await ws.receive_json(timeout=DEADLINE) == {"event": "data:set:people", "data": people}
    await ws.send_json({"event": "chat:say", "text": "hi"})
    assert await ws.receive_json(timeout=DEADLINE) == {
        "event": "chat:said",
        "data": {"from": welcome["data"]["client_id"], "text": "hi"},
    }
    for text, code in (("null", "bad_frame"), ('{"text": "hi"}', "missing_event")):
        await ws.send_str(text)  # answered, where monument ignored the one and broke on the other
        assert (await ws.receive_json(timeout=DEADLINE))["error"]["code"] == code
    await ws.close()


@check("serverless-sockets")
async def _serverless_sockets(servers: list[Server], session: aiohttp.ClientSession) -> None:
    native, _ = await welcomed(session, servers[0].ws_url)
    peer = ss_client.SSPeer(await session.ws_connect(servers[0].ws_url[: -len("/ws")] + "/ss"))
    await peer.send("greet", {"name": "ada"})
    got = [await peer.recv() for _ in range(2)]
    assert [(m.type, m.event, m.payload) for m in got] == [
        (ss_client.MESSAGE, "greet", {"hello": "ada"}),
        (ss_client.BROADCAST, "greet", {"joined": "ada"}),
    ]
    assert await native.receive_json(timeout=DEADLINE) == {
        "event": "greet",
        "data": {"joined": "ada"},
    }
    await peer.send("counter")
    synced = [await peer.recv() for _ in range(3)]
    assert [(m.type, m.payload) for m in synced] == [
        (ss_client.SYNC, {"count": n}) for n in range(3)
    ]
    await peer.ws.close()
    await native.close()


@check("super-scaled-sockets")
async def _super_scaled_sockets(servers: list[Server], session: aiohttp.ClientSession) -> None:
    peer = sss_client.SSSPeer(await session.ws_connect(servers[0].base + "/sss"))
    assert (await peer.begin())["prot"]["hb"] is True
    assert isinstance((await peer.ask("serverTime"))["msg"], float)
    assert (await peer.subscribe("private-room", "guess"))["result"] is False
    assert (await peer.subscribe("private-room", "21sdf24dgFD1"))["result"] is True
    assert (await peer.subscribe("sport"))["result"] is True
    async with session.post(servers[0].base + "/article", json={"title": "hi"}) as response:
        assert await response.json() == {"offset": 1}
    feed = await peer.recv()
    assert (feed["sys"], feed["topic"], feed["msg"], feed["channel"]) == (
        sss_client.FEED,
        "article",
        {"title": "hi"},
        "sport",
    )
    assert feed["uid"].endswith(":1")
    await peer.ws.close()


@check("smartersockets")
async def _smartersockets(servers: list[Server], session: aiohttp.ClientSession) -> None:
    """The section's client block (Bea sees Ada connect, then disconnect) against its server."""
    blocks = re.findall(r"^```python\n(.*?)^```", DOCS.read_text(), re.MULTILINE | re.DOTALL)
    (code,) = [c for c in blocks if "async def meet" in c]
    namespace: dict[str, Any] = {"__name__": "docs_meet"}
    exec(compile(code, str(DOCS), "exec"), namespace)
    labels, seen = await namespace["meet"](servers[0].ws_url)
    assert labels == ["Ada", "Bea"]
    assert seen == [("Ada", "connected"), ("Ada", "disconnected")]
    for _ in range(int(DEADLINE * 20)):  # its client.disconnected receiver prints to the log
        if "Ada left room:1" in servers[0].log:
            break
        await asyncio.sleep(0.05)
    assert "Ada left room:1" in servers[0].log
    async with session.post(servers[0].base + "/rooms/1/knock") as response:
        assert await response.json() == {"knocked": True}


@check("owlmeans")
async def _owlmeans(servers: list[Server], session: aiohttp.ClientSession) -> None:
    peer = OwlPeer(await session.ws_connect(servers[0].ws_url[: -len("/ws")] + "/owl"))
    assert (await peer.next_heard())["event"] == "welcome"

    async def nickname(name: Any) -> Any:
        return name.upper()

    peer.performers["nickname"] = nickname
    assert await peer.call("greet", "ada") == {"hello": "ADA"}
    responses = await peer.request("ticks", 3)
    got = [await asyncio.wait_for(responses.get(), DEADLINE) for _ in range(4)]
    assert [(r["payload"], r.get("end")) for r in got] == [
        (0, None),
        (1, None),
        (2, None),
        (None, True),
    ]
    await peer.notify("job", {"id": 7})
    await asyncio.wait_for(peer.queued.wait(), DEADLINE)
    queued = peer.consume()
    assert queued is not None
    assert queued[0] == {"done": {"id": 7}}
    await peer.close()


# Last: the checks above have registered themselves by now.
@pytest.mark.parametrize("name", sorted(CHECKS))
async def test_doc_example_runs_as_the_docs_say(servers: dict[str, list[Server]], name: str):
    running = servers[name]
    async with aiohttp.ClientSession() as session:
        try:
            await asyncio.wait_for(CHECKS[name][1](running, session), DEADLINE * 2)
        except BaseException:
            for server in running:
                print(f"--- {name} log:\n{server.log}")
            raise
