"""The monument-ws command: new, data, run (as a real subprocess), and its errors."""

import asyncio
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

import monument_ws
from monument_ws.cli import cli
from tests.conftest import DEADLINE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def count_tests(project: Path) -> int:
    """The test functions in a project's tests/ folder: every one must run and pass."""
    return sum(
        len(re.findall(r"^(?:async )?def test_", path.read_text(), re.M))
        for path in (project / "tests").rglob("test_*.py")
    )


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
    assert f"{count_tests(project)} passed" in tests.stdout
    assert (project / "plugs" / "hello.py").is_file()


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
    assert f"{count_tests(project)} passed" in tests.stdout
    again = runner.invoke(cli, ["data", "weather", "--project", str(project)])
    assert again.exit_code != 0
    assert "already exists" in again.output


@pytest.mark.parametrize("name", ["Weather", "class", "9lives", "_a", "a-", "a--b", "a.b", "a-_b"])
def test_data_refuses_bad_names(tmp_path, name):
    """A provider name is lowercase letters and digits with - or _ between them, and its
    module name is no Python keyword."""
    result = CliRunner().invoke(cli, ["data", name, "--project", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a data provider name" in result.output
    assert list(tmp_path.iterdir()) == []


async def test_data_collection_and_dashed_names_answer_a_running_app(tmp_path):
    """`data items --collection` and `data this-item`, served by `run app:create_app`: over a
    real socket data:get:items answers the collection, data:get:items:ID the item as
    data:set:items:ID, data:get:this-item its provider (module this_item); the app's own
    generated tests pass."""
    project = tmp_path / "shop"
    runner = CliRunner()
    assert runner.invoke(cli, ["new", str(project)]).exit_code == 0
    for args in (["items", "--collection"], ["this-item"]):
        result = runner.invoke(cli, ["data", *args, "--project", str(project)])
        assert result.exit_code == 0, result.output
    assert (project / "app" / "data" / "this_item.py").is_file()
    assert (
        '__all__ = ["greeting", "items", "this_item"]'
        in (project / "app" / "data" / "__init__.py").read_text()
    )
    again = runner.invoke(cli, ["data", "this_item", "--project", str(project)])
    assert "already exists" in again.output
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONUMENT_WS_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monument_ws", "run", "app:create_app", "--port", str(port),
        cwd=project, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await read_banner(proc)
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
                assert (await ws.receive_json(timeout=DEADLINE))["event"] == "ws:welcome"
                answers = {}
                for n, event in enumerate(
                    ["data:get:items", "data:get:items:2", "data:get:items:9", "data:get:this-item"]
                ):
                    await ws.send_str(json.dumps({"event": event, "id": n}))
                    answers[event] = await ws.receive_json(timeout=DEADLINE)
            async with session.get(f"http://127.0.0.1:{port}/api/items/2") as response:
                over_http = await response.json()
            async with session.get(f"http://127.0.0.1:{port}/api/this-item") as response:
                assert response.status == 200
    finally:
        await stop(proc)
    collection = answers["data:get:items"]
    assert collection["event"] == "data:set:items"
    assert {"id": "2", "name": "second"} in collection["data"]
    assert answers["data:get:items:2"] == {
        "event": "data:set:items:2",
        "id": 1,
        "data": {"id": "2", "name": "second"},
    }
    assert over_http == {"id": "2", "name": "second"}
    assert answers["data:get:items:9"]["error"]["code"] == "not_found"
    assert answers["data:get:this-item"]["event"] == "data:set:this-item"
    assert answers["data:get:this-item"]["data"] == {"name": "this-item", "items": []}
    tests = run_pytest_in(project)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert f"{count_tests(project)} passed" in tests.stdout


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


def squeeze(text: str) -> str:
    """Help text without its line wrapping (click wraps, even inside hyphenated words)."""
    return "".join(text.split())


def test_run_help_documents_every_key():
    """`run -h` has, for every schema key, its flag and its aliases' flags on one line, its
    documentation, its default and its env var."""
    from monument_ws.cli.options import RUN_DEFAULTS, alias_flags
    from monument_ws.config import schema

    result = CliRunner().invoke(cli, ["run", "-h"], terminal_width=80)
    assert result.exit_code == 0
    flat = squeeze(result.output)
    keys = schema()
    assert {"plugs", "reload", "sync_memory"} <= {info.name for info in keys}
    for info in keys:
        default = RUN_DEFAULTS.get(info.name, info.default)
        shown = ",".join(default) if isinstance(default, tuple) else default
        entry = squeeze(f"{info.doc} [default: {shown!r}; env: {info.env_var}]")
        shape = f"[{info.metavar}]" if info.type == "bool" else info.metavar
        spellings = ",".join([info.flag, *alias_flags(info)])
        assert f"{spellings}{shape}" in flat, info.name
        assert entry in flat, info.name


def test_run_help_groups_the_flags_under_headings_with_real_metavars():
    """`run -h` lists each key under its group's heading, in GROUPS order, its value named by
    what it is (SECONDS, BYTES, URL …), never a bare VALUE; every key declares its group."""
    from monument_ws.config import GROUPS, schema

    result = CliRunner().invoke(cli, ["run", "-h"], terminal_width=100)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    headings = [line[:-1] for line in lines if line.endswith(":") and not line.startswith(" ")]
    assert headings == [*GROUPS.values(), "Options"]
    under: dict[str, str] = {}
    heading = ""
    for line in lines:
        if line.endswith(":") and not line.startswith(" "):
            heading = line[:-1]
        elif line.startswith("  --"):
            under[line.split()[0].rstrip(",")] = heading
    for info in schema():
        assert under[info.flag] == GROUPS[info.group], info.name
    assert under["--host"] == under["--port"] == under["--workers"] == "Server"
    assert " VALUE" not in result.output
    for flag, metavar in [
        ("--data-timeout, --dataTimeout", "SECONDS"),
        ("--max-message-size, --maxMessageSize, --payloadLimit", "BYTES"),
        ("--broker", "URL"),
        ("--plugs, --plugsFolder", "DIR"),
        ("--max-inflight, --maxInflight", "N"),
        ("--socket-events, --socketEvents", "GLOB,..."),
        ("--reload", "[BOOL]"),
        ("--metrics-path, --metricsPath", "PATH"),
    ]:
        pattern = rf"^  {re.escape(flag)} {re.escape(metavar)}( |$)"
        assert re.search(pattern, result.output, re.M), flag


def test_every_alias_is_a_flag_of_run_with_the_same_effect():
    """Each alias of each key is accepted by `run` as a flag (`--payloadLimit` for
    --max-message-size) and sets the same parameter, to the same Config value."""
    from monument_ws.cli.options import build_config
    from monument_ws.cli.run_command import run
    from monument_ws.config import schema

    aliased = [(info, alias) for info in schema() for alias in info.aliases]
    assert len(aliased) >= 40
    assert ("max_message_size", "payloadLimit") in {(info.name, a) for info, a in aliased}
    for info, alias in aliased:
        value = "true" if info.type == "bool" else "7"
        by_alias = run.make_context("run", [f"--{alias}", value]).params
        by_flag = run.make_context("run", [info.flag, value]).params
        expected = (value,) if info.repeatable else value  # a repeatable flag gathers a tuple
        assert by_alias[info.name] == by_flag[info.name] == expected, alias
    flags: dict[str, str | None] = {"max_message_size": "1000", "websocket": "data"}
    by_alias = run.make_context("run", ["--payloadLimit", "1000", "--webSocket", "data"]).params
    assert (by_alias["max_message_size"], by_alias["websocket"]) == ("1000", "data")
    assert build_config(
        {k: str(v) for k, v in by_alias.items() if k in flags}, None, {}
    ) == build_config(flags, None, {})


def test_run_help_lists_no_alias_as_an_option_of_its_own():
    """The aliases' flags are on their key's help line, never lines of their own."""
    from monument_ws.config import schema

    result = CliRunner().invoke(cli, ["run", "-h"], terminal_width=100)
    starts = {line.split()[0] for line in result.output.splitlines() if line.startswith("  --")}
    for info in schema():
        for alias in info.aliases:
            assert not {f"--{alias}", f"--{alias},"} & starts, alias


async def test_alias_flags_reach_a_real_server():
    """`run --webSocket data --payloadLimit 1000`: the banner shows the websocket mode and the
    welcome frame the message size limit, as with --websocket and --max-message-size."""
    port = free_port()
    proc = await start_run("--port", str(port), "--webSocket", "data", "--payloadLimit", "1000")
    try:
        _, banner = await read_banner(proc)
        assert f"  sockets:  ws://127.0.0.1:{port}/ws (websocket: data)" in banner
        assert (await welcome_of(f"http://127.0.0.1:{port}/ws"))["max_message_size"] == 1000
    finally:
        await stop(proc)


def test_a_key_must_name_its_help_group():
    """A new key without a known group= is refused when the schema is declared."""
    from monument_ws.config import option, parse_int

    with pytest.raises(ValueError, match="group must be one of server"):
        option(1, "A count.", parse_int, group="misc")


def test_top_level_help_shows_every_command_whole():
    """`monument-ws -h` gives each command a short help that is not cut off with '...'."""
    result = CliRunner().invoke(cli, ["-h"], terminal_width=80)
    assert result.exit_code == 0
    commands = result.output.split("Commands:")[1].strip().splitlines()
    assert [line.split()[0] for line in commands] == [
        "config", "data", "generate", "new", "publish", "run"
    ]  # fmt: skip
    for line in commands:
        assert not line.endswith("..."), line
        assert len(line) <= 80, line


def test_config_explains_one_key_and_refuses_unknown_ones(monkeypatch, tmp_path):
    """`config KEY` shows doc, type, default and the effective value with its source."""
    settings = tmp_path / "settings.toml"
    settings.write_text("[monument_ws]\ndata_timeout = 7\n")
    monkeypatch.setenv("MONUMENT_WS_HEARTBEAT", "3")
    runner = CliRunner()
    result = runner.invoke(cli, ["config", "heartbeat"])
    assert result.exit_code == 0, result.output
    assert squeeze("Seconds between WebSocket pings") in squeeze(result.output)
    assert "heartbeat (float)" in result.output
    assert "default:     25.0" in result.output
    assert "value here:  3.0  [environment (MONUMENT_WS_HEARTBEAT)]" in result.output
    by_alias = runner.invoke(cli, ["config", "dataTimeout", "--config", str(settings)])
    assert f"value here:  7.0  [config file ({settings})]" in by_alias.output
    assert "aliases:     dataTimeout  (flags too: --dataTimeout)" in by_alias.output
    assert (
        "value here:  true  [run's default]" in runner.invoke(cli, ["config", "websocket"]).output
    )
    unknown = runner.invoke(cli, ["config", "hearbeat"])
    assert unknown.exit_code == 2
    assert "did you mean 'heartbeat'?" in unknown.output
    listing = runner.invoke(cli, ["config"]).output
    assert all(info_line in listing for info_line in ("plugs ", "reload ", "sync_memory "))


def test_generate_writes_a_plug_that_answers_with_its_test(tmp_path):
    """`generate chat/send` writes plugs/chat/send.py and a test that passes against it."""
    project = tmp_path / "proj"
    project.mkdir()
    runner = CliRunner()
    result = runner.invoke(cli, ["generate", "chat/send", "--project", str(project)])
    assert result.exit_code == 0, result.output
    assert (project / "plugs" / "chat" / "send.py").is_file()
    (project / "pyproject.toml").write_text(
        "[tool.pytest.ini_options]\nasyncio_mode = 'auto'\n"
        "asyncio_default_fixture_loop_scope = 'function'\n"
    )
    tests = run_pytest_in(project)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout
    again = runner.invoke(cli, ["generate", "chat/send", "--project", str(project)])
    assert again.exit_code != 0
    assert "already exists" in again.output


@pytest.mark.parametrize("name", ["../up", "a//b", "_private", ".hidden", "INIT", "a b", "x:get:y"])
def test_generate_refuses_bad_names(tmp_path, name):
    """A plug name is /-separated parts of letters, digits, _ and -; nothing escapes plugs/."""
    result = CliRunner().invoke(cli, ["generate", name, "--project", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a plug name" in result.output
    assert list(tmp_path.iterdir()) == []


def test_bare_boolean_flags_mean_true():
    """`--reload` alone is `--reload true`; `--reload false` still works."""
    from monument_ws.cli.options import build_config
    from monument_ws.cli.run_command import run

    params = {p.name: p for p in run.params}
    assert params["reload"].flag_value == "true"  # type: ignore[attr-defined]
    ctx = run.make_context("run", ["--reload", "--compression", "false"])
    cfg = build_config(
        {k: v for k, v in ctx.params.items() if k in ("reload", "compression")}, None, {}
    )
    assert (cfg.reload, cfg.compression) == (True, False)


async def test_flags_beat_environment_beat_config_file():
    """A real `run`: path from the file, max_message_size from env over the file, heartbeat from the flag."""
    port = free_port()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        settings = Path(tmp) / "settings.json"
        settings.write_text(
            json.dumps({"path": "/from-file", "heartbeat": 7, "max_message_size": 1111})
        )
        env = {
            **os.environ,
            "MONUMENT_WS_HEARTBEAT": "8",
            "MONUMENT_WS_MAX_MESSAGE_SIZE": "2222",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monument_ws", "run", "--port", str(port),
            "--config", str(settings), "--heartbeat", "9",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            welcome = await welcome_of(f"http://127.0.0.1:{port}/from-file")
            assert welcome["heartbeat"] == 9.0
            assert welcome["max_message_size"] == 2222
        finally:
            proc.terminate()
            await proc.wait()


async def welcome_of(url: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(DEADLINE * 20)):
            try:
                async with session.ws_connect(url) as ws:
                    frame = await ws.receive_json(timeout=DEADLINE)
                    assert frame["event"] == "ws:welcome"
                    return dict(frame["data"])
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        pytest.fail("the server did not start")


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
                await ws.send_str(json.dumps({"event": "hello", "id": 3, "data": "run"}))
                reply = await ws.receive_json(timeout=DEADLINE)
                assert reply["data"] == "Hello, run!"  # the template's plugs/ folder
                proc.send_signal(signal.SIGTERM)
                msg = await ws.receive(timeout=DEADLINE)
                assert msg.type is aiohttp.WSMsgType.CLOSE
                assert ws.close_code == 1001
        assert await asyncio.wait_for(proc.wait(), DEADLINE) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    "extra", [[], ["--workers", "2", "--broker", "redis://127.0.0.1:6379/0"]], ids=["1", "2"]
)
def test_a_port_in_use_is_one_line_and_exit_1(extra):
    """A real `run` on a busy port, one process or workers: exit code 1, one line on stderr
    naming the address and what to do, no traceback (nothing starts, so no Redis is needed)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "monument_ws", "run", "--port", str(port), *extra],
            capture_output=True, text=True, timeout=DEADLINE * 6,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(another server on that port?); try --port"
    ]


def test_debug_shows_the_traceback_of_a_failed_start():
    """With --debug the same failure shows its traceback, for whoever needs it."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "monument_ws", "run", "--port", str(port), "--debug"],
            capture_output=True, text=True, timeout=DEADLINE * 6,
        )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "Address already in use" in result.stderr


def test_run_serves_a_module_level_app_and_names_the_settings_it_ignores(tmp_path):
    """`run example:app` loads an Application the module built at import (the docs' examples);
    the settings given to run that only a factory receives are named in one warning, the ones
    run uses itself (TLS, --log-format) are not. A busy port stops it right after loading."""
    (tmp_path / "example.py").write_text(
        "from aiohttp import web\n\nimport monument_ws\n\napp = web.Application()\n"
        "monument_ws.setup(app, websocket=True, bus=monument_ws.EventBus())\n\n\n"
        "def create_app():\n    return app\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONUMENT_WS_")}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        results = [
            subprocess.run(
                [sys.executable, "-m", "monument_ws", "run", target, "--port", port, *flags],
                cwd=tmp_path,
                env={**env, "MONUMENT_WS_SECRET": "s"},
                capture_output=True,
                text=True,
                timeout=DEADLINE * 6,
            )
            for target, flags in [
                ("example:app", ["--heartbeat", "5", "--log-format", "json"]),
                ("example:create_app", ["--heartbeat", "5"]),
            ]
        ]
    built, factory = (result.stderr.splitlines() for result in results)
    assert all(result.returncode == 1 for result in results)  # loaded, then the busy port
    assert built[0] == (
        "Warning: example:app is an application built at import, not a factory: it keeps the "
        "settings of its own setup() call, so --heartbeat, MONUMENT_WS_SECRET are ignored "
        "(pass them to setup(), or make it a factory with a config parameter)"
    )
    assert built[1:] == factory
    assert factory[0].startswith(f"Error: cannot listen on 127.0.0.1:{port}")


BLOCK_IMPORTS = '''
import os
import sys


class Blocked:
    """Makes the modules named in BLOCKED_MODULES fail to import, as if not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in os.environ["BLOCKED_MODULES"].split(","):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Blocked())
'''


def run_without(
    tmp_path: Path, blocked: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """A real `monument-ws run ARGS` in which the modules ``blocked`` cannot be imported."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(BLOCK_IMPORTS)
    env = {**os.environ, "PYTHONPATH": str(shim), "BLOCKED_MODULES": blocked}
    return subprocess.run(
        [sys.executable, "-m", "monument_ws", "run", "--port", str(free_port()), *args],
        capture_output=True, text=True, timeout=DEADLINE * 6, env=env, cwd=cwd,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "module", "line"),
    [
        (
            ["--reload"],
            "watchfiles",
            "Error: reload needs watchfiles, which is not installed: "
            "pip install 'monument-ws[reload]'",
        ),
        (
            ["--metrics"],
            "prometheus_client",
            "Error: metrics needs prometheus-client, which is not installed: "
            "pip install 'monument-ws[metrics]'",
        ),
        (
            ["--broker", "redis://:hunter2@127.0.0.1:6379/0"],
            "redis",
            "Error: the broker redis:// needs redis, which is not installed: "
            "pip install 'monument-ws[redis]'",
        ),
        (
            ["--store", "postgresql://postgres@127.0.0.1:5432/test"],
            "asyncpg",
            "Error: the store postgresql:// needs asyncpg, which is not installed: "
            "pip install 'monument-ws[postgres]'",
        ),
    ],
    ids=["reload", "metrics", "redis", "postgres"],
)
def test_a_missing_extra_is_one_line_naming_what_to_install(tmp_path, args, module, line):
    """A flag whose optional dependency is not installed: one line on stderr saying which
    extra to install, exit 1, no traceback; --debug shows the traceback."""
    result = run_without(tmp_path, module, *args)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [line]
    assert result.stdout == ""
    debug = run_without(tmp_path, module, *args, "--debug")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
    assert "MissingExtra" in debug.stderr


def test_a_missing_extra_asked_for_by_the_apps_own_code_is_one_line_too(tmp_path):
    """An app that turns metrics on in code, not with a flag, fails the same way."""
    (tmp_path / "metered.py").write_text(
        "from aiohttp import web\nimport monument_ws\n\n\ndef create_app():\n"
        "    app = web.Application()\n"
        "    monument_ws.setup(app, websocket=True, metrics=True, bus=monument_ws.EventBus())\n"
        "    return app\n"
    )
    result = run_without(tmp_path, "prometheus_client", "metered:create_app", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Error: metrics needs prometheus-client, which is not installed: "
        "pip install 'monument-ws[metrics]'"
    ]


def test_an_unknown_broker_url_is_a_usage_error():
    """--broker with a scheme no broker serves is refused before anything starts."""
    result = CliRunner().invoke(cli, ["run", "--broker", "kafka://somewhere"])
    assert result.exit_code == 2
    assert "unknown broker URL 'kafka://somewhere'" in result.output
    assert "Traceback" not in result.output


async def read_banner(proc: asyncio.subprocess.Process) -> tuple[list[str], list[str]]:
    """The lines on ``proc``'s stderr up to the banner, and the banner itself."""
    assert proc.stderr is not None
    before: list[str] = []
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), DEADLINE * 4)).decode()
        assert line, f"the server exited before its banner: {before}"
        if line.startswith("monument-ws "):
            banner = [line.rstrip("\n")]
            while not banner[-1].startswith("  workers:"):
                line = (await asyncio.wait_for(proc.stderr.readline(), DEADLINE)).decode()
                banner.append(line.rstrip("\n"))
            return before, banner
        before.append(line)


async def start_run(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monument_ws", "run", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), DEADLINE * 2)


async def test_run_prints_a_banner_once_it_listens():
    """Once listening, `run` prints one block on stderr: the socket URL, the websocket mode,
    the broker, the plugs folder with its events, the workers; the socket is up by then."""
    from monument_ws.app_template import __file__ as template

    port = free_port()
    proc = await start_run("--port", str(port), "--websocket", "data")
    try:
        before, banner = await read_banner(proc)
        plugs = Path(template).parent / "plugs"
        events = len(list(plugs.rglob("[!_]*.py"))) - (plugs / "INIT.py").exists()
        assert banner == [
            f"monument-ws {monument_ws.__version__} listening on http://127.0.0.1:{port}/",
            "  app:      the demo (no ./plugs here; monument-ws new DIR copies it)",
            f"  sockets:  ws://127.0.0.1:{port}/ws (websocket: data)",
            f"            ws://127.0.0.1:{port}/ss (serverless-sockets)",
            f"            ws://127.0.0.1:{port}/sss (super-scaled-sockets)",
            f"            ws://127.0.0.1:{port}/owl (owlmeans)",
            "  broker:   memory://",
            f"  plugs:    {plugs} ({events} events)",
            "  workers:  1",
        ]
        assert not any("rebinding" in line for line in before)
        assert (await welcome_of(f"http://127.0.0.1:{port}/ws"))["client_id"]
    finally:
        await stop(proc)
    assert proc.stdout is not None
    assert await proc.stdout.read() == b""


async def test_beyond_loopback_without_allowed_origins_run_warns_about_dns_rebinding():
    """On 0.0.0.0 with allowed_origins empty, `run` logs that the Origin/Host check does not
    stop DNS rebinding and how to set allowed_origins; the banner lists the reachable URLs."""
    port = free_port()
    proc = await start_run("--host", "0.0.0.0", "--port", str(port))
    try:
        before, banner = await read_banner(proc)
    finally:
        await stop(proc)
    (warning,) = [line for line in before if "WARNING" in line]
    for words in (
        "0.0.0.0",
        "DNS rebinding",
        "Host header",
        "--allowed-origins",
        "allowed_origins",
    ):
        assert words in warning, words
    assert banner[0].endswith(f"http://0.0.0.0:{port}/ (all interfaces)")
    assert f"ws://127.0.0.1:{port}/ws, ws://{socket.gethostname()}:{port}/ws" in banner[2]


@pytest.mark.parametrize(
    ("host", "origins", "warned"),
    [
        ("0.0.0.0", (), True),
        ("192.0.2.7", (), True),
        ("::", (), True),
        ("0.0.0.0", ("https://app.example",), False),
        ("127.0.0.1", (), False),
        ("::1", (), False),
        ("localhost", (), False),
    ],
)
def test_the_origin_warning_needs_a_non_loopback_host_and_no_allowed_origins(
    caplog, host, origins, warned
):
    from monument_ws.cli.banner import Summary, warn_origin

    with caplog.at_level(logging.WARNING, logger="monument_ws.cli"):
        warn_origin(Summary(mounted=True, websocket="true", allowed_origins=origins), host)
        warn_origin(Summary(mounted=True, websocket="false"), host)
    assert len(caplog.records) == warned


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("memory://", "memory://"),
        ("redis://:hunter2@10.0.0.5:6379/2", "redis://10.0.0.5:6379/2"),
        ("rediss://user:hunter2@cache:6380/0", "rediss://cache:6380/0"),
        ("unix:///run/redis.sock?password=hunter2&db=3", "unix:///run/redis.sock?db=3"),
    ],
)
def test_the_banner_shows_the_broker_without_credentials(url, shown):
    from monument_ws.cli.banner import redact

    assert redact(url) == shown
