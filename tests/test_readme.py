"""The README's example blocks, taken from README.md itself and executed against a real server."""

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import DEADLINE

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)


def test_readme_has_the_two_setup_commands_first():
    """The first code block is the install+demo command and the test command, which .ci/run runs."""
    first = blocks("sh")[0].splitlines()
    # The demo needs the package alone; the test command installs the development tools itself.
    assert first[0].startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    assert "'.[" not in first[0]
    assert ".venv/bin/monument-ws run" in first[0]
    assert ".[dev,redis,postgres]" in (README.parent / "scripts" / "test").read_text()
    assert first[1].split("#")[0].strip() == "./scripts/test"
    assert "scripts/test" in (README.parent / ".ci" / "run").read_text()


@pytest.fixture
async def readme_server(aiohttp_client):
    code = blocks("python")[0]
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)
    return await aiohttp_client(namespace["app"])


async def test_readme_python_example(readme_server):
    """The server example answers GET /api/greeting, data:get:greeting and echo."""
    client = readme_server
    over_http = await (await client.get("/api/greeting")).json()
    async with client.ws_connect("/ws", protocols=("monument.v1",)) as ws:
        assert (await ws.receive_json(timeout=DEADLINE))["event"] == "ws:welcome"
        await ws.send_json({"event": "data:get:greeting", "id": 1})
        assert await ws.receive_json(timeout=DEADLINE) == {
            "event": "data:set:greeting",
            "id": 1,
            "data": over_http,
        }


async def test_readme_python_client(readme_server, capsys):
    """The ten-line client example talks to the server example and prints what its comments say."""
    code = blocks("python")[1]
    assert len(code.strip().splitlines()) <= 12
    namespace: dict[str, object] = {"__name__": "readme_client"}
    exec(compile(code, str(README), "exec"), namespace)
    main = namespace["main"]
    assert callable(main)
    client_id = await main(str(readme_server.make_url("/ws")))
    assert isinstance(client_id, str)
    assert client_id
    assert capsys.readouterr().out.splitlines() == [
        "{'greeting': 'Hello from monument_ws!'}",
        "hi",
        "3",
        "2",
        "1",
    ]


async def test_readme_browser_snippet_in_node(readme_server, tmp_path):
    """The browser snippet, run in Node's WebSocket, prints the frames the README shows."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: install it to run the browser snippet")
    (snippet,) = blocks("js")
    host = f"{readme_server.host}:{readme_server.port}"
    script = tmp_path / "snippet.mjs"
    script.write_text(
        f"globalThis.location = {{ host: {json.dumps(host)} }};\n"
        "const lines = [];\n"
        "console.log = (line) => { lines.push(line); if (lines.length === 3) {"
        " process.stdout.write(JSON.stringify(lines)); process.exit(0); } };\n" + snippet
    )
    proc = await asyncio.create_subprocess_exec(
        node, "--experimental-websocket", "--no-warnings", str(script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 0, err.decode()
    frames = [json.loads(line) for line in json.loads(out)]
    assert frames[0]["event"] == "ws:welcome"
    assert frames[1:] == [
        {"event": "data:set:greeting", "id": 1, "data": {"greeting": "Hello from monument_ws!"}},
        {"event": "echo", "id": 2, "data": "hi"},
    ]
    # the comments in the snippet show these same frames
    for frame in frames[1:]:
        assert json.dumps(frame, separators=(",", ":")) in snippet


async def test_the_readme_client_comment_is_what_the_demo_answers(aiohttp_client):
    """The client example's default URL is the demo's (the first command serves it there), so the
    greeting its comment shows is the demo's own, not only the example server's."""
    from monument_ws.app_template.app.main import create_app
    from monument_ws.client import Client

    code = blocks("python")[1]
    assert 'url="ws://127.0.0.1:8080/ws"' in code
    shown = re.search(r'call\("data:get:greeting"\)\)  # (.*)$', code, re.MULTILINE)
    assert shown is not None
    demo = await aiohttp_client(create_app())
    async with Client(str(demo.make_url("/ws"))) as client:
        assert repr(await client.call("data:get:greeting")) == shown.group(1)


def test_start_your_own_app_runs_the_venvs_commands():
    """The block after the set-up commands first activates the venv those made, so its bare
    ``monument-ws`` and ``pip`` are the ones that have monument_ws."""
    section = README.read_text().split("## Start your own app", 1)[1]
    block = re.search(r"^```sh\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert block is not None
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert lines[0] == ". .venv/bin/activate"
    assert lines[1].startswith("monument-ws new ")
