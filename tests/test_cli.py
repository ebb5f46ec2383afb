"""The monument-ws command: new, data, run (as a real subprocess), and its errors."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from monument_ws.cli import cli
from tests.conftest import DEADLINE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_pytest_in(project: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_new_app_passes_its_own_tests(tmp_path):
    """`new DIR` copies the template, and the copy's own test suite passes."""
    project = tmp_path / "shop"
    result = CliRunner().invoke(cli, ["new", str(project)])
    assert result.exit_code == 0, result.output
    assert (project / "app" / "main.py").is_file()
    assert not (project / "__init__.py").exists()
    tests = run_pytest_in(project)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "9 passed" in tests.stdout


def test_new_refuses_a_non_empty_directory(tmp_path):
    """`new` never overwrites: a non-empty directory is refused with a clear message."""
    (tmp_path / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["new", str(tmp_path)])
    assert result.exit_code != 0
    assert "is not empty" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_data_adds_a_wired_provider_with_a_test(tmp_path):
    """`data NAME` writes a provider and its test; it answers over HTTP and socket."""
    project = tmp_path / "app-with-weather"
    runner = CliRunner()
    assert runner.invoke(cli, ["new", str(project)]).exit_code == 0
    result = runner.invoke(cli, ["data", "weather", "--project", str(project)])
    assert result.exit_code == 0, result.output
    registry = (project / "app" / "data" / "__init__.py").read_text()
    assert "from . import weather" in registry
    assert '__all__ = ["greeting", "weather"]' in registry
    tests = run_pytest_in(project)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "10 passed" in tests.stdout
    again = runner.invoke(cli, ["data", "weather", "--project", str(project)])
    assert again.exit_code != 0
    assert "already exists" in again.output


@pytest.mark.parametrize("name", ["Weather", "class", "9lives", "a-b"])
def test_data_refuses_bad_names(tmp_path, name):
    """A provider name must be a lowercase Python identifier."""
    result = CliRunner().invoke(cli, ["data", name, "--project", str(tmp_path)])
    assert result.exit_code != 0
    assert "lowercase Python identifier" in result.output


def test_data_outside_a_project_is_refused(tmp_path):
    """`data` in a directory that `new` did not make says so."""
    result = CliRunner().invoke(cli, ["data", "weather", "--project", str(tmp_path)])
    assert result.exit_code != 0
    assert "is not an app made by" in result.output


def test_run_rejects_bad_flags_without_a_traceback():
    """A bad configuration flag is a usage error naming the key."""
    result = CliRunner().invoke(cli, ["run", "--data-timeout", "soon"])
    assert result.exit_code == 2
    assert "data_timeout" in result.output
    assert "Traceback" not in result.output


def test_run_help_documents_every_key():
    """`run -h` lists a flag for every configuration key."""
    from monument_ws.config import schema

    result = CliRunner().invoke(cli, ["run", "-h"])
    for info in schema():
        assert info.flag in result.output


async def test_run_serves_the_demo_and_stops_on_sigterm():
    """`python -m monument_ws run` serves the template; SIGTERM closes sockets with 1001, exit 0."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monument_ws", "run", "--port", str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{port}"
            for _ in range(int(DEADLINE * 20)):
                try:
                    async with session.get(f"{base}/api/greeting") as response:
                        over_http = await response.json()
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the server did not start")
            async with session.ws_connect(f"{base}/ws") as ws:
                assert (await ws.receive_json(timeout=DEADLINE))["event"] == "ws:welcome"
                await ws.send_str(json.dumps({"event": "data:get:greeting", "id": 1}))
                assert await ws.receive_json(timeout=DEADLINE) == {
                    "event": "data:set:greeting",
                    "id": 1,
                    "data": over_http,
                }
                await ws.send_str(json.dumps({"event": "echo", "id": 2, "data": "hi"}))
                assert (await ws.receive_json(timeout=DEADLINE))["data"] == "hi"
                proc.send_signal(signal.SIGTERM)
                msg = await ws.receive(timeout=DEADLINE)
                assert msg.type is aiohttp.WSMsgType.CLOSE
                assert ws.close_code == 1001
        assert await asyncio.wait_for(proc.wait(), DEADLINE) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
