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
    assert first[0].startswith("python3 -m venv .venv && .venv/bin/pip install -e '.[dev,redis]'")
    assert "monument-ws run" in first[0]
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
    assert capsys.readouterr().out.splitlines() == ["{'greeting': 'hello'}", "hi", "3", "2", "1"]


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
        {"event": "data:set:greeting", "id": 1, "data": {"greeting": "hello"}},
        {"event": "echo", "id": 2, "data": "hi"},
    ]
    # the comments in the snippet show these same frames
    for frame in frames[1:]:
        assert json.dumps(frame, separators=(",", ":")) in snippet
