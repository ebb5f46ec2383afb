"""The plugs folder over real sockets: answers, typed yields, hot reload, hooks and path safety."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import monument_ws
from monument_ws import signals
from monument_ws.server.plugs import Plugs, Report, plug_files
from tests.conftest import DEADLINE


def put(folder: Path, relative: str, source: str) -> None:
    """Write a plug atomically (staged outside the folder, then renamed in): one change event."""
    target = folder / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / "staging"
    staging.mkdir(exist_ok=True)
    temp = staging / target.name
    temp.write_text(textwrap.dedent(source))
    os.replace(temp, target)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    plugs = tmp_path / "plugs"
    plugs.mkdir()
    return plugs


def plugs_of(plugin: monument_ws.MonumentWS) -> Plugs:
    assert plugin.plugs is not None
    return plugin.plugs


async def changed(plugs: Plugs, generation: int) -> Report:
    """Wait for the reload after ``generation`` (the signal, never a sleep)."""
    return await asyncio.wait_for(plugs.reloaded(generation), DEADLINE)


HELLO = """
async def handle(message, socket):
    return {"hello": message.data}
"""

COUNT = """
async def handle(message, socket):
    for n in range(1, message.data + 1):
        yield n
"""


async def test_a_plug_answers(make_server, connect, folder):
    """plugs/hello.py answers the event hello, and plugs/chat/send.py the event chat/send."""
    put(folder, "hello.py", HELLO)
    put(folder, "chat/send.py", "def handle(message, socket):\n    return 'sent'\n")
    client, plugin = await make_server(plugs=str(folder))
    assert sorted(plugs_of(plugin).events) == ["chat/send", "hello"]
    peer = await connect(client)
    assert await peer.request({"event": "hello", "id": 1, "data": "ada"}) == {
        "event": "hello",
        "id": 1,
        "data": {"hello": "ada"},
    }
    assert (await peer.request({"event": "chat/send", "id": 2}))["data"] == "sent"


async def test_multiple_yields_arrive_in_order(make_server, connect, folder):
    """Each yield is a chunk with more:true, in order, then end; without an id they are pushes."""
    put(folder, "count.py", COUNT)
    client, _ = await make_server(plugs=str(folder))
    peer = await connect(client)
    await peer.send({"event": "count", "id": 1, "data": 5})
    frames = [await peer.recv() for _ in range(6)]
    assert frames[:5] == [{"event": "count", "id": 1, "data": n, "more": True} for n in range(1, 6)]
    assert frames[5] == {"event": "count", "id": 1, "end": True}
    await peer.send({"event": "count", "data": 2})
    assert [await peer.recv() for _ in range(2)] == [
        {"event": "count", "data": 1},
        {"event": "count", "data": 2},
    ]


async def test_unknown_event_is_not_found(make_server, connect, folder):
    """An event with no plug gets not_found with the request's id."""
    put(folder, "hello.py", HELLO)
    client, _ = await make_server(plugs=str(folder))
    peer = await connect(client)
    reply = await peer.request({"event": "nope", "id": 3})
    assert reply["event"] == "ws:error"
    assert reply["error"]["code"] == "not_found"


async def test_broadcast_reaches_the_other_sockets(make_server, connect, folder):
    """A BROADCAST yield reaches every socket; with channel= it is a channel publication."""
    put(
        folder,
        "shout.py",
        """
        from monument_ws.yields import broadcast

        async def handle(message, socket):
            yield broadcast(message.data)
            yield broadcast({"in": "room"}, channel="room", event="said")
            yield "done"
        """,
    )
    client, _ = await make_server(plugs=str(folder))
    sender, other, listener = [await connect(client) for _ in range(3)]
    subscribed = await listener.request(
        {"event": "ws:subscribe", "id": 1, "data": {"channel": "room"}}
    )
    assert subscribed["data"]["channel"] == "room"
    await sender.send({"event": "shout", "id": 9, "data": "hi all"})
    assert await other.recv() == {"event": "shout", "data": "hi all"}
    assert await listener.recv() == {"event": "shout", "data": "hi all"}
    assert await listener.recv() == {
        "event": "said",
        "channel": "room",
        "data": {"in": "room"},
        "offset": 1,
    }
    mine = [await sender.recv() for _ in range(3)]
    assert mine == [
        {"event": "shout", "data": "hi all"},
        {"event": "shout", "id": 9, "data": "done", "more": True},
        {"event": "shout", "id": 9, "end": True},
    ]


async def test_typed_yields_become_their_frames(make_server, connect, folder):
    """custom_n, message(event=), error and not_found map to the protocol's frames; errors end the reply."""
    put(
        folder,
        "typed.py",
        """
        from monument_ws.yields import custom, error, message, not_found

        async def handle(message_, socket):
            yield custom(3, {"x": 1})
            yield message("aside", event="note")
            if message_.data == "missing":
                yield not_found("no such board")
            yield error("forbidden", "members only")
            yield "never sent"
        """,
    )
    put(
        folder,
        "custom.py",
        """
        from monument_ws.yields import custom

        async def handle(message, socket):
            return custom(5, "five")
        """,
    )
    client, _ = await make_server(plugs=str(folder))
    peer = await connect(client)
    await peer.send({"event": "typed", "id": 1})
    assert [await peer.recv() for _ in range(3)] == [
        {"event": "typed", "id": 1, "type": "custom_3", "data": {"x": 1}, "more": True},
        {"event": "note", "data": "aside"},
        {
            "event": "ws:error",
            "id": 1,
            "error": {"code": "forbidden", "message": "members only"},
        },
    ]
    await peer.send({"event": "typed", "id": 2, "data": "missing"})
    frames = [await peer.recv() for _ in range(3)]
    assert frames[2]["error"] == {"code": "not_found", "message": "no such board"}
    assert await peer.request({"event": "custom", "id": 3}) == {
        "event": "custom",
        "id": 3,
        "type": "custom_5",
        "data": "five",
    }
    assert (await peer.request({"event": "ws:ping", "id": 4}))["data"] == {}  # nothing else queued


SLOW_V1 = """
async def handle(message, socket):
    yield "old 1"
    await socket.call("continue")
    yield "old 2"
"""


async def test_editing_a_plug_changes_the_answer_on_the_same_socket(make_server, connect, folder):
    """An edit is live on the open socket (no reconnect); a stream started before finishes with the old code."""
    put(folder, "work.py", SLOW_V1)
    client, plugin = await make_server(plugs=str(folder), reload=True)
    plugs = plugs_of(plugin)
    peer = await connect(client)
    await peer.send({"event": "work", "id": 1})
    assert (await peer.recv())["data"] == "old 1"
    call = await peer.recv()
    assert call["event"] == "continue"  # the old stream waits for us, mid-way

    generation = plugs.generation
    put(folder, "work.py", "async def handle(message, socket):\n    yield 'new'\n")
    report = await changed(plugs, generation)
    assert report.changed == ("work",)
    assert report.errors == {}

    assert await peer.request({"event": "work", "id": 2}) == {
        "event": "work",
        "id": 2,
        "data": "new",
        "more": True,
    }
    assert await peer.recv() == {"event": "work", "id": 2, "end": True}
    await peer.send({"event": "ws:result", "call": call["call"], "data": None})
    assert await peer.recv() == {"event": "work", "id": 1, "data": "old 2", "more": True}
    assert await peer.recv() == {"event": "work", "id": 1, "end": True}
    assert not peer.ws.closed
    assert plugin.stats.connections == 1  # the same socket throughout: no reconnect


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        ("async def handle(message, socket)\n    return 1\n", "SyntaxError"),
        ("import no_such_module_here\n", "ModuleNotFoundError"),
        ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
        ("async def handle(message):\n    return 1\n", "handle must take two arguments"),
        ("x = 1\n", "defines no handle"),
    ],
    ids=["syntax", "import", "raises", "signature", "no-handle"],
)
async def test_a_broken_edit_keeps_the_old_code_and_reports(
    make_server, connect, folder, caplog, broken, error
):
    """A plug that fails to load keeps its previous version; the error is logged and reported."""
    put(folder, "hello.py", HELLO)
    seen: list[Report] = []
    client, plugin = await make_server(plugs=str(folder), reload=True)
    plugin.bus.on(signals.PLUGS_RELOADED, lambda event, *, report, **_: seen.append(report))
    plugs = plugs_of(plugin)
    peer = await connect(client)
    generation = plugs.generation
    with caplog.at_level(logging.ERROR, logger="monument_ws.plugs"):
        put(folder, "hello.py", broken)
        report = await changed(plugs, generation)
    assert error in report.errors["hello.py"]
    assert report.events == ("hello",)
    assert seen == [report]
    assert any("hello.py failed to load" in r.getMessage() for r in caplog.records)
    assert (await peer.request({"event": "hello", "id": 1, "data": 1}))["data"] == {"hello": 1}

    generation = plugs.generation
    put(folder, "hello.py", "def handle(message, socket):\n    return 'fixed'\n")
    report = await changed(plugs, generation)
    assert report.errors == {}
    assert (await peer.request({"event": "hello", "id": 2}))["data"] == "fixed"


async def test_new_and_deleted_files_take_effect_without_restart(make_server, connect, folder):
    """A new file is a new event at once; a deleted one answers not_found; a new broken file is not served."""
    put(folder, "hello.py", HELLO)
    client, plugin = await make_server(plugs=str(folder), reload=True)
    plugs = plugs_of(plugin)
    peer = await connect(client)
    assert (await peer.request({"event": "added/later", "id": 1}))["error"]["code"] == "not_found"

    generation = plugs.generation
    put(folder, "added/later.py", "def handle(message, socket):\n    return 'here'\n")
    report = await changed(plugs, generation)
    assert report.added == ("added/later",)
    assert (await peer.request({"event": "added/later", "id": 2}))["data"] == "here"

    generation = plugs.generation
    (folder / "hello.py").unlink()
    report = await changed(plugs, generation)
    assert report.removed == ("hello",)
    assert (await peer.request({"event": "hello", "id": 3}))["error"]["code"] == "not_found"

    generation = plugs.generation
    put(folder, "bad.py", "this is not python\n")
    report = await changed(plugs, generation)
    assert "bad.py" in report.errors
    assert (await peer.request({"event": "bad", "id": 4}))["error"]["code"] == "not_found"


SECRET = """
import sys
sys.modules["plugs_test_marker"].reached.append(__file__)

def handle(message, socket):
    return "secret"
"""


async def test_dot_dot_in_an_event_never_reaches_a_file_outside(
    make_server, connect, folder, tmp_path
):
    """Event names are looked up in the scanned table, so ../ and links out of the folder lead nowhere."""
    marker = types.SimpleNamespace(reached=[])
    sys.modules["plugs_test_marker"] = marker  # type: ignore[assignment]
    try:
        (tmp_path / "secret.py").write_text(SECRET)
        (tmp_path / "outside").mkdir()
        (tmp_path / "outside" / "deep.py").write_text(SECRET)
        put(folder, "chat/send.py", HELLO)
        (folder / "link.py").symlink_to(tmp_path / "secret.py")
        (folder / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
        client, plugin = await make_server(plugs=str(folder))
        assert plugs_of(plugin).events == ("chat/send",)
        peer = await connect(client)
        for n, event in enumerate(
            [
                "../secret",
                "chat/../../secret",
                "../outside/deep",
                "/" + str(tmp_path / "secret"),
                str(tmp_path / "secret.py"),
                "..\\secret",
                "link",
                "linked/deep",
                "chat/./send",
            ]
        ):
            reply = await peer.request({"event": event, "id": n})
            assert reply["error"]["code"] == "not_found", event
        assert marker.reached == []
        assert [e for e, _ in plug_files(folder)] == ["chat/send"]
    finally:
        del sys.modules["plugs_test_marker"]


async def test_init_runs_before_the_plugs_load_and_shutdown_at_the_end(aiohttp_client, bus, folder):
    """INIT.init(app) runs once before any plug is imported; shutdown(app) runs after the sockets closed."""
    log_: list[str] = []
    sys.modules["plugs_test_log"] = types.SimpleNamespace(log=log_)  # type: ignore[assignment]
    try:
        put(
            folder,
            "INIT.py",
            """
            import sys
            log = sys.modules["plugs_test_log"].log

            async def init(app):
                log.append("init")

            def shutdown(app):
                log.append("shutdown")
            """,
        )
        put(
            folder,
            "hello.py",
            'import sys\nsys.modules["plugs_test_log"].log.append("import hello")\n' + HELLO,
        )
        app = web.Application()
        plugin = monument_ws.setup(app, bus=bus, websocket=True, plugs=str(folder))
        client = await aiohttp_client(app)
        assert log_ == ["init", "import hello"]
        assert plugs_of(plugin).events == ("hello",)  # INIT.py is not an event
        async with client.ws_connect("/ws") as ws:
            await ws.receive_json(timeout=DEADLINE)
            await ws.send_json({"event": "INIT", "id": 1})
            assert (await ws.receive_json(timeout=DEADLINE))["error"]["code"] == "not_found"
        await client.close()
        assert log_ == ["init", "import hello", "shutdown"]
    finally:
        del sys.modules["plugs_test_log"]


async def test_a_failing_init_stops_the_app_from_starting(bus, folder):
    """An exception in INIT.init is not swallowed: the server does not start."""
    from aiohttp.test_utils import TestServer

    put(folder, "INIT.py", "def init(app):\n    raise RuntimeError('no database')\n")
    app = web.Application()
    monument_ws.setup(app, bus=bus, websocket=True, plugs=str(folder))
    server = TestServer(app)
    try:
        with pytest.raises(RuntimeError, match="no database"):
            await server.start_server()
    finally:
        await server.close()


async def test_code_handlers_yield_types_too_and_win_over_plugs(make_server, connect, folder):
    """A handler registered in code beats a plug of the same event, and may yield typed values."""
    from monument_ws.yields import custom

    put(folder, "hello.py", HELLO)
    client, plugin_ = await make_server(plugs=str(folder))
    plugin: monument_ws.MonumentWS = plugin_

    @plugin.handler("hello")
    async def hello(message: Any, socket: Any) -> Any:
        yield custom(1, "from code")

    peer = await connect(client)
    assert (await peer.request({"event": "hello", "id": 1}))["type"] == "custom_1"


async def test_a_hot_reload_logs_what_changed_and_whether_it_loaded(make_server, folder, caplog):
    """Each reload logs one line naming the plugs added, changed and removed, and each that
    failed to load with its error and whether its previous version still serves."""
    put(folder, "hello.py", HELLO)
    put(folder, "gone.py", HELLO)
    _, plugin = await make_server(plugs=str(folder), reload=True)
    plugs = plugs_of(plugin)
    generation = plugs.generation
    with caplog.at_level(logging.INFO, logger="monument_ws.plugs"):
        put(folder, "hello.py", "def handle(message, socket):\n    return 'v2'\n")
        put(folder, "chat/send.py", HELLO)
        (folder / "gone.py").unlink()
        await changed(plugs, generation)
        while plugs.table.plugs.keys() != {"hello", "chat/send"}:  # one batch, or two
            generation = plugs.generation
            await changed(plugs, generation)
        generation = plugs.generation
        caplog.clear()
        put(folder, "hello.py", "def handle(message, socket)\n")
        put(folder, "bad.py", "raise RuntimeError('no')\n")
        report = await changed(plugs, generation)
        while set(report.errors) != {"hello.py", "bad.py"}:
            report = await changed(plugs, plugs.generation)
    records = [r for r in caplog.records if r.getMessage().startswith("plugs reloaded: ")]
    lines = [r.getMessage() for r in records]
    assert records[-1].levelno == logging.WARNING
    assert "hello.py failed to load (SyntaxError" in lines[-1]
    assert "its previous version still serves" in lines[-1]
    assert "bad.py failed to load (RuntimeError: no; not served)" in lines[-1]


def test_a_reload_report_reads_as_one_line():
    """Report.summary names every plug that moved and says when nothing did."""
    report = Report(
        generation=2,
        events=("hello", "chat/send"),
        added=("chat/send",),
        changed=("hello",),
        removed=("gone",),
        errors={},
    )
    assert report.summary() == (
        "plugs reloaded: chat/send.py added; hello.py changed; gone.py removed"
    )
    assert Report(3, (), (), (), (), {}).summary() == "plugs reloaded: no plug changed"
