"""docs/websockets.md: every python example runs, and the configuration reference matches the schema."""

import re
from pathlib import Path

import pytest
from aiohttp import web

from monument_ws.config import reference_markdown
from tests.conftest import DEADLINE
from tests.test_tls import certificates, tls_server  # noqa: F401  (fixtures)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "websockets.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOCS.read_text(), re.MULTILINE | re.DOTALL)


def test_configuration_reference_matches_the_schema():
    """The reference table at the end of the docs is exactly what the schema generates."""
    text = DOCS.read_text()
    assert text.endswith(reference_markdown()), (
        "regenerate with monument_ws.config.reference_markdown()"
    )


def app_blocks() -> list[str]:
    return [code for code in python_blocks() if "\napp = " in code]


@pytest.mark.parametrize("code", app_blocks(), ids=lambda code: code.splitlines()[-1][:40])
async def test_docs_example_serves_a_socket(aiohttp_client, code):
    """Each example is a complete app that accepts a socket and answers ws:ping (or ws:auth)."""
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(code, str(DOCS), "exec"), namespace)
    app = namespace["app"]
    assert isinstance(app, web.Application)
    client = await aiohttp_client(app)
    async with client.ws_connect("/ws") as ws:
        assert (await ws.receive_json(timeout=DEADLINE))["event"] == "ws:welcome"
        await ws.send_json({"event": "ws:ping", "id": 1})
        pong = await ws.receive_json(timeout=DEADLINE)
        # an example with an outgoing middleware may stamp extra keys (sender, dt)
        assert {k: pong[k] for k in ("event", "id", "data")} == {
            "event": "ws:ping",
            "id": 1,
            "data": {},
        }


def example(marker: str, blocks: list[str] | None = None) -> str:
    (code,) = [c for c in (blocks or python_blocks()) if marker in c]
    return code


def app_example(marker: str) -> str:
    return example(marker, app_blocks())


async def serve(aiohttp_client, code):
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(code, str(DOCS), "exec"), namespace)
    return await aiohttp_client(namespace["app"])


async def test_docs_data_example_answers_http_and_socket_later(aiohttp_client):
    """The data-event example answers later via a scoped :set:, over HTTP and the socket."""
    client = await serve(aiohttp_client, app_example('"data:get:user"'))
    assert await (await client.get("/api/user/3")).json() == {"id": 3, "name": "Ada"}
    async with client.ws_connect("/ws") as ws:
        await ws.receive_json(timeout=DEADLINE)
        await ws.send_json({"event": "data:get:user", "id": 1, "data": {"id": 4}})
        assert (await ws.receive_json(timeout=DEADLINE))["data"] == {"id": 4, "name": "Ada"}


async def test_docs_stream_and_error_example(aiohttp_client):
    """The handler example streams a countdown, answers admin with forbidden, and add (a plain
    function) with the sum."""
    client = await serve(aiohttp_client, app_example("countdown"))
    async with client.ws_connect("/ws") as ws:
        await ws.receive_json(timeout=DEADLINE)
        await ws.send_json({"event": "countdown", "id": 1, "data": 3})
        frames = [await ws.receive_json(timeout=DEADLINE) for _ in range(4)]
        assert [f.get("data") for f in frames[:3]] == [3, 2, 1]
        assert frames[3] == {"event": "countdown", "id": 1, "end": True}
        await ws.send_json({"event": "admin", "id": 2})
        assert (await ws.receive_json(timeout=DEADLINE))["error"]["code"] == "forbidden"
        await ws.send_json({"event": "add", "id": 3, "data": [1, 2, 3]})
        assert await ws.receive_json(timeout=DEADLINE) == {"event": "add", "id": 3, "data": 6}


async def test_docs_server_call_example(aiohttp_client):
    """The server-call example greets the name the client performs."""
    from monument_ws.client import Client

    client = await serve(aiohttp_client, app_example("greet-me"))
    async with Client(str(client.make_url("/ws"))) as c:
        c.perform("ask-name", lambda data: "Ada")
        assert await c.call("greet-me") == "Hello, Ada!"


async def test_docs_client_example_runs_against_the_template():
    """The Python client example runs against the template app (which has greet-me, countdown)."""
    from monument_ws.app_template.app import create_app
    from monument_ws.testing import Communicator

    namespace: dict[str, object] = {"__name__": "docs_client"}
    exec(compile(example("async def main(url)"), str(DOCS), "exec"), namespace)
    async with Communicator(create_app()) as comm:
        await namespace["main"](str(comm.server.make_url("/ws")))  # type: ignore[operator]


async def test_docs_communicator_example():
    """The testing example's test passes."""
    namespace: dict[str, object] = {"__name__": "docs_testing"}
    exec(compile(example("async def test_join"), str(DOCS), "exec"), namespace)
    await namespace["test_join"]()  # type: ignore[operator]


async def test_docs_channels_example(aiohttp_client):
    """The channels example publishes with offsets and enforces its namespaces."""
    client = await serve(aiohttp_client, app_example("announce"))
    async with client.ws_connect("/ws") as ws:
        await ws.receive_json(timeout=DEADLINE)
        await ws.send_json({"event": "ws:subscribe", "id": 1, "data": {"channel": "news"}})
        assert (await ws.receive_json(timeout=DEADLINE))["data"]["recovered"] is False
        assert await (await client.post("/announce?title=hi")).json() == {"offset": 1}
        article = await ws.receive_json(timeout=DEADLINE)
        assert article == {
            "event": "article",
            "channel": "news",
            "data": {"title": "hi"},
            "offset": 1,
        }
        assert (await ws.receive_json(timeout=DEADLINE))["event"] == "notice"
        await ws.send_json({"event": "ws:subscribe", "id": 2, "data": {"channel": "room:1"}})
        assert (await ws.receive_json(timeout=DEADLINE))["error"]["code"] == "forbidden"


async def test_docs_follow_example():
    """The client recovery example subscribes and reports its position."""
    from monument_ws.app_template.app import create_app
    from monument_ws.testing import Communicator

    namespace: dict[str, object] = {"__name__": "docs_follow"}
    exec(compile(example("async def follow"), str(DOCS), "exec"), namespace)
    async with Communicator(create_app()) as comm:
        offset, epoch = await namespace["follow"](str(comm.server.make_url("/ws")))  # type: ignore[operator]
        assert offset == 0
        assert isinstance(epoch, str)


async def test_docs_publisher_example(redis_prefix):
    """The outside-publisher example publishes through a real Redis."""
    from tests.conftest import REDIS_URL

    namespace: dict[str, object] = {"__name__": "docs_publisher"}
    exec(compile(example("async def nightly_report"), str(DOCS), "exec"), namespace)
    assert await namespace["nightly_report"](REDIS_URL, redis_prefix) == 1  # type: ignore[operator]


async def test_docs_presence_example(aiohttp_client):
    """The presence example lists members with label and meta over HTTP."""
    client = await serve(aiohttp_client, app_example("presence.DISCONNECTED"))
    async with client.ws_connect("/ws") as ws:
        await ws.receive_json(timeout=DEADLINE)
        await ws.send_json(
            {
                "event": "ws:subscribe",
                "id": 1,
                "data": {"channel": "room:1", "label": "Ada", "meta": {"a": 1}},
            }
        )
        await ws.receive_json(timeout=DEADLINE)
        listed = await (await client.get("/rooms/1/members")).json()
        assert listed["count"] == 1
        assert (listed["members"][0]["label"], listed["members"][0]["meta"]) == ("Ada", {"a": 1})


async def test_docs_security_example(aiohttp_client):
    """The staged-auth example: init, challenge, authenticated; a revoked token gets 4401."""
    client = await serve(aiohttp_client, app_example("async def authenticate"))
    refused = await client.ws_connect("/ws", headers={"Authorization": "Bearer revoked"})
    await refused.receive(timeout=DEADLINE)
    assert refused.close_code == 4401
    async with client.ws_connect("/ws") as ws:
        assert (await ws.receive_json(timeout=DEADLINE))["data"]["stage"] == "anonymous"
        await ws.send_json({"event": "ws:auth", "id": 1, "data": {"stage": "init"}})
        assert (await ws.receive_json(timeout=DEADLINE))["data"]["stage"] == "challenge"
        await ws.send_json(
            {
                "event": "ws:auth",
                "id": 2,
                "data": {"stage": "answer", "answer": "sesame", "user": "ada"},
            }
        )
        assert (await ws.receive_json(timeout=DEADLINE))["data"] == {
            "stage": "authenticated",
            "data": {"hello": "ada"},
        }


async def test_docs_tls_example(tls_server, certificates):  # noqa: F811
    """The TLS client example calls the template over wss:// trusting the test's CA."""
    namespace: dict[str, object] = {"__name__": "docs_tls"}
    exec(compile(example("async def over_tls"), str(DOCS), "exec"), namespace)
    url = f"wss://127.0.0.1:{tls_server.port}/ws"
    assert await namespace["over_tls"](url, str(certificates["ca"])) == "over TLS"  # type: ignore[operator]


async def test_docs_kick_example(aiohttp_client):
    """The kick example closes the named client with 4409 and the reason."""
    client = await serve(aiohttp_client, app_example("/admin/kick/"))
    async with client.ws_connect("/ws") as ws:
        client_id = (await ws.receive_json(timeout=DEADLINE))["data"]["client_id"]
        assert (await (await client.post(f"/admin/kick/{client_id}")).json()) == {
            "kicked": client_id
        }
        msg = await ws.receive(timeout=DEADLINE)
        assert (ws.close_code, msg.extra) == (4409, "removed by an admin")


async def test_docs_middleware_example(aiohttp_client):
    """The middleware example stamps every frame, refuses admin events and audits input."""
    namespace: dict[str, object] = {"__name__": "docs_middleware"}
    exec(compile(app_example("def no_admin"), str(DOCS), "exec"), namespace)
    client = await aiohttp_client(namespace["app"])
    async with client.ws_connect("/ws") as ws:
        welcome = await ws.receive_json(timeout=DEADLINE)
        assert (welcome["sender"], welcome["dt"]) == ("node-1", 1)
        await ws.send_json({"event": "ws:ping", "id": 1})
        assert await ws.receive_json(timeout=DEADLINE) == {
            "event": "ws:ping",
            "id": 1,
            "data": {},
            "sender": "node-1",
            "dt": 2,
        }
        await ws.send_json({"event": "admin:wipe", "id": 2})
        refused = await ws.receive_json(timeout=DEADLINE)
        assert (refused["id"], refused["error"]["code"]) == (2, "forbidden")
    assert namespace["audit"] == [
        {"event": "ws:ping", "id": 1},
        {"event": "admin:wipe", "id": 2},
    ]


async def test_docs_peer_queue_example(aiohttp_client):
    """The peer-queue examples: the server queues two messages, the client consumes them by
    filter, and the server consumes what the client queued."""
    from monument_ws.client import Client

    client = await serve(aiohttp_client, app_example('"inbox"'))
    namespace: dict[str, object] = {"__name__": "docs_queue"}
    exec(compile(example("async def queue_round_trip"), str(DOCS), "exec"), namespace)
    async with Client(str(client.make_url("/ws"))) as c:
        assert await namespace["queue_round_trip"](c) == ("hello", 12, 1)  # type: ignore[operator]


async def test_docs_plugs_example_broadcasts_and_reloads_on_the_same_socket(aiohttp_client):
    """The plugs example: chat/send broadcasts and replies; an edit is live on the same open socket."""
    import asyncio
    import os

    namespace: dict[str, object] = {"__name__": "docs_plugs"}
    exec(compile(app_example("plugs = Path("), str(DOCS), "exec"), namespace)
    client = await aiohttp_client(namespace["app"])
    plugs = namespace["ws"].plugs  # type: ignore[attr-defined]
    folder = namespace["plugs"]
    async with client.ws_connect("/ws") as sender, client.ws_connect("/ws") as other:
        for ws in (sender, other):
            await ws.receive_json(timeout=DEADLINE)
        await sender.send_json({"event": "chat/send", "id": 1, "data": "hi"})
        assert await other.receive_json(timeout=DEADLINE) == {
            "event": "chat/send",
            "data": {"text": "hi"},
        }
        frames = [await sender.receive_json(timeout=DEADLINE) for _ in range(3)]
        assert frames[1:] == [
            {"event": "chat/send", "id": 1, "data": "sent", "more": True},
            {"event": "chat/send", "id": 1, "end": True},
        ]
        generation = plugs.generation
        staged = folder.parent / "send.py"  # type: ignore[attr-defined]
        staged.write_text("async def handle(message, socket):\n    return 'v2'\n")
        os.replace(staged, folder / "chat" / "send.py")  # type: ignore[operator]
        await asyncio.wait_for(plugs.reloaded(generation), DEADLINE)
        await sender.send_json({"event": "chat/send", "id": 2})
        assert await sender.receive_json(timeout=DEADLINE) == {
            "event": "chat/send",
            "id": 2,
            "data": "v2",
        }
