"""`monument-ws run` and a plugs folder, as real subprocesses: without MODULE:FACTORY the folder
here is served as a plain app (else the demo), a relative --plugs is relative to the current
directory, for a factory too, and the folder hot-reloads."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from monument_ws.cli import cli
from tests.conftest import DEADLINE
from tests.test_cli import free_port, read_banner, squeeze

HELLO = "async def handle(message, socket):\n    return f'hello, {message.data}!'\n"
_ids = itertools.count(1)


class Run:
    """One `python -m monument_ws run ARGS` started in ``cwd`` on a free port."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.banner: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app_line(self) -> str:
        (line,) = [line for line in self.banner if line.startswith("  app:")]
        return line

    def plugs_line(self) -> str:
        (line,) = [line for line in self.banner if line.startswith("  plugs:")]
        return line


async def start(cwd: Path, *args: str) -> Run:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONUMENT_WS_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monument_ws", "run", *args, "--port", str(port),
        cwd=cwd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    run = Run(proc, port)
    _, run.banner = await read_banner(proc)
    return run


@pytest.fixture
async def runs() -> AsyncIterator[list[Run]]:
    """The runs a test starts; each is stopped (SIGTERM, then kill) afterwards."""
    started: list[Run] = []
    yield started
    for run in started:
        if run.proc.returncode is None:
            run.proc.terminate()
            try:
                await asyncio.wait_for(run.proc.wait(), DEADLINE)
            except TimeoutError:
                run.proc.kill()
                await run.proc.wait()


async def call(run: Run, event: str, data: Any = None) -> dict[str, Any]:
    """The answer to one request ``event`` on a new socket to ``run``."""
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{run.base}/ws") as ws:
        assert (await ws.receive_json(timeout=DEADLINE))["event"] == "ws:welcome"
        await ws.send_str(json.dumps({"event": event, "id": next(_ids), "data": data}))
        return dict(await ws.receive_json(timeout=DEADLINE))


async def status_of(run: Run, path: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(run.base + path) as response:
        return response.status


async def test_run_without_an_app_serves_the_plugs_folder_here(tmp_path, runs):
    """In a directory holding plugs/, `run` serves those plugs as a plain app (the banner says
    so): the plug answers over a real socket, and the demo's page and handlers are absent."""
    (tmp_path / "plugs" / "chat").mkdir(parents=True)
    (tmp_path / "plugs" / "hello.py").write_text(HELLO)
    (tmp_path / "plugs" / "chat" / "send.py").write_text(
        "async def handle(message, socket):\n    yield 'sent'\n"
    )
    runs.append(run := await start(tmp_path))
    assert "the plugs folder only" in run.app_line()
    assert run.plugs_line() == f"  plugs:    {tmp_path / 'plugs'} (2 events)"
    assert (await call(run, "hello", "plugs"))["data"] == "hello, plugs!"
    streamed = await call(run, "chat/send")
    assert streamed["data"] == "sent"
    assert (await call(run, "echo", "x"))["error"]["code"] == "not_found"  # the demo's handler
    assert await status_of(run, "/") == 404  # the demo's page
    assert await status_of(run, "/api/greeting") == 404


async def test_a_relative_plugs_flag_is_relative_to_the_current_directory(tmp_path, runs):
    """`run --plugs other/dir` serves ./other/dir, not a folder of the demo's package."""
    (tmp_path / "other" / "dir").mkdir(parents=True)
    (tmp_path / "other" / "dir" / "hello.py").write_text(HELLO.replace("hello,", "other,"))
    (tmp_path / "plugs").mkdir()
    (tmp_path / "plugs" / "hello.py").write_text(HELLO)  # not this one: --plugs names the folder
    runs.append(run := await start(tmp_path, "--plugs", "other/dir"))
    assert run.plugs_line() == f"  plugs:    {tmp_path / 'other' / 'dir'} (1 event)"
    assert (await call(run, "hello", "x"))["data"] == "other, x!"


def test_a_missing_plugs_folder_without_an_app_is_a_usage_error(tmp_path, monkeypatch):
    """`run --plugs nowhere` without MODULE:FACTORY names the folder instead of serving nothing."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", "--plugs", "nowhere", "--port", str(free_port())])
    assert result.exit_code == 2
    shown = squeeze(f"the plugs folder {tmp_path / 'nowhere'} is not a directory")
    assert shown in squeeze(result.output)
    assert "Traceback" not in result.output


async def test_without_a_plugs_folder_run_still_serves_the_demo(tmp_path, runs):
    """In a directory with no plugs/, `run` serves the demo with its own plugs and page."""
    runs.append(run := await start(tmp_path))
    assert "the demo" in run.app_line()
    assert (await call(run, "hello", "run"))["data"] == "Hello, run!"  # the template's plug
    assert (await call(run, "echo", "x"))["data"] == "x"
    assert await status_of(run, "/") == 200


async def test_a_new_app_serves_its_own_plugs_and_a_relative_plugs_flag(tmp_path, runs):
    """`new` then `run app:create_app` in the app serves its plugs/ and its routes; with
    `--plugs more` the factory is given ./more of the app's directory."""
    project = tmp_path / "myapp"
    assert CliRunner().invoke(cli, ["new", str(project)]).exit_code == 0
    (project / "more").mkdir()
    (project / "more" / "shout.py").write_text(
        "async def handle(message, socket):\n    return str(message.data).upper()\n"
    )
    runs.append(own := await start(project, "app:create_app"))
    assert own.app_line() == "  app:      app:create_app"
    assert (await call(own, "hello", "app"))["data"] == "Hello, app!"
    assert await status_of(own, "/api/greeting") == 200
    runs.append(more := await start(project, "app:create_app", "--plugs", "more"))
    assert more.plugs_line() == f"  plugs:    {project / 'more'} (1 event)"
    assert (await call(more, "shout", "hey"))["data"] == "HEY"
    assert await status_of(more, "/api/greeting") == 200


async def test_the_plugs_folder_here_hot_reloads(tmp_path, runs):
    """`run --reload` in a plugs folder: a plug added while it runs answers on a new socket."""
    pytest.importorskip("watchfiles")
    (tmp_path / "plugs").mkdir()
    (tmp_path / "plugs" / "hello.py").write_text(HELLO)
    runs.append(run := await start(tmp_path, "--reload"))
    assert run.plugs_line().endswith("(1 event, reloaded on change)")
    (tmp_path / "plugs" / "late.py").write_text(HELLO.replace("hello,", "late,"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE * 2
    while (answer := await call(run, "late", "x")).get("data") != "late, x!":
        assert answer["error"]["code"] == "not_found", answer
        assert loop.time() < deadline, "the new plug was never served"
        await asyncio.sleep(0.05)
