"""docs/websockets.md: the client-side examples run, the plugs example hot-reloads, the
middleware example's listener audits, and the configuration reference matches the schema.

The server examples run as their own processes, as a reader would run them, in
tests/test_doc_examples.py; the helpers here serve one in-process where a test needs its
module's objects (test_metrics.py, the plugs folder, the audit list)."""

import re
from pathlib import Path

from monument_ws.config import reference_markdown
from tests.conftest import DEADLINE, chat_send_round_trip
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


def example(marker: str, blocks: list[str] | None = None) -> str:
    (code,) = [c for c in (blocks or python_blocks()) if marker in c]
    return code


def app_example(marker: str) -> str:
    return example(marker, app_blocks())


async def serve(aiohttp_client, code):
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(code, str(DOCS), "exec"), namespace)
    return await aiohttp_client(namespace["app"])


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


async def test_docs_tls_example(tls_server, certificates):  # noqa: F811
    """The TLS client example calls the template over wss:// trusting the test's CA."""
    namespace: dict[str, object] = {"__name__": "docs_tls"}
    exec(compile(example("async def over_tls"), str(DOCS), "exec"), namespace)
    url = f"wss://127.0.0.1:{tls_server.port}/ws"
    assert await namespace["over_tls"](url, str(certificates["ca"])) == "over TLS"  # type: ignore[operator]


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
        await chat_send_round_trip(sender, other)
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
