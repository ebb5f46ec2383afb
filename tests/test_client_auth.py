"""The Python client against real servers: staged auth (``auth``, ``stage``, ``ws:stage``),
extra top-level keys on calls and tells, and the retry cap and fixed retry interval.

The same features of monument.js are tested in tests/js/live.test.mjs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import monument_ws
from monument_ws import AuthFailed, ConnectionLost, NotFound, Unauthorized
from monument_ws.auth import AuthStep, Session
from monument_ws.client import Client
from tests.conftest import DEADLINE, eventually
from tests.test_client import Gate, Restartable


async def staged(make_server: Any) -> tuple[str, monument_ws.MonumentWS]:
    """A server requiring auth: ``init`` → ``challenge`` (a nonce) → ``answer`` →
    ``authenticated``; ``echo`` answers once authenticated."""
    client, ws = await make_server(require_auth=True, auth_timeout=3600)

    async def authenticate(socket: Any, stage: str, data: Any) -> AuthStep:
        if stage == "init":
            socket.state["nonce"] = "n-1"
            return AuthStep("challenge", {"nonce": "n-1"})
        if stage == "answer" and data.get("answer") == "sesame:" + socket.state.get("nonce", ""):
            return AuthStep("authenticated", {"hello": data["user"]}, Session(user=data["user"]))
        raise Unauthorized("that is not the answer")

    ws.authenticator = authenticate
    ws.handler("echo")(lambda message, socket: message.data)
    ws.handler("drop")(lambda message, socket: asyncio.ensure_future(socket.close(1011, "drop")))
    return str(client.make_url("/ws")), ws


async def test_auth_moves_the_stage_and_emits_ws_stage(make_server):
    """auth() runs each stage, returns the authenticator's answer, and moves ``stage``; a
    refused stage raises AuthFailed (an Unauthorized) and leaves the stage as it was."""
    url, _ = await staged(make_server)
    async with Client(url) as c:
        stages: list[Any] = []
        c.on("ws:stage", stages.append)
        assert c.stage == "anonymous"
        with pytest.raises(Unauthorized):
            await c.call("echo", 1)  # not yet authenticated
        assert await c.auth("init") == {"nonce": "n-1"}
        assert c.stage == "challenge"
        with pytest.raises(AuthFailed) as failed:
            await c.auth("answer", {"answer": "wrong", "user": "ada"})
        assert isinstance(failed.value, Unauthorized)
        assert (failed.value.stage, failed.value.code.value, failed.value.remote) == (
            "answer",
            "unauthorized",
            True,
        )
        assert failed.value.message == "that is not the answer"
        assert c.stage == "challenge"
        answer = await c.auth("answer", {"answer": "sesame:n-1", "user": "ada"})
        assert answer == {"hello": "ada"}
        assert c.stage == "authenticated"
        assert await c.call("echo", 2) == 2
        assert stages == [
            {"stage": "challenge", "previous": "anonymous"},
            {"stage": "authenticated", "previous": "challenge"},
        ]


async def test_auth_refuses_a_bad_payload_locally_and_reports_a_server_without_stages(
    make_server,
):
    """A payload that is not a mapping, or that has its own ``stage``, never leaves the client;
    a server without an authenticator answers not_found, which is not an AuthFailed."""
    client, _ = await make_server()
    async with Client(str(client.make_url("/ws"))) as c:
        with pytest.raises(TypeError):
            await c.auth("init", ["not", "a", "mapping"])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="stage"):
            await c.auth("init", {"stage": "other"})
        with pytest.raises(ValueError, match="stage"):
            await c.auth("")
        with pytest.raises(NotFound):
            await c.auth("init")
        assert c.stage == "anonymous"


async def test_a_reconnect_starts_from_the_welcomes_stage(make_server):
    """What ws:auth established lives on the socket: after a reconnect (same client id,
    resumed) the server's welcome says ``anonymous`` again, ``stage`` follows it with a
    ``ws:stage`` event, and the client authenticates again to use the socket."""
    url, _ = await staged(make_server)
    gate = Gate(hold_after=100)
    async with Client(url, sleep=gate) as c:
        await c.auth("init")
        await c.auth("answer", {"answer": "sesame:n-1", "user": "ada"})
        first_id = c.client_id
        stages: list[Any] = []
        reconnected = asyncio.Event()
        c.on("ws:stage", stages.append)
        c.on("ws:reconnect", lambda welcome: reconnected.set())
        c.tell("drop")
        await asyncio.wait_for(reconnected.wait(), DEADLINE)
        assert (c.client_id, c.welcome["resumed"]) == (first_id, True)
        assert c.stage == "anonymous"
        assert stages == [{"stage": "anonymous", "previous": "authenticated"}]
        with pytest.raises(Unauthorized):
            await c.call("echo", 1)
        await c.auth("init")
        await c.auth("answer", {"answer": "sesame:n-1", "user": "ada"})
        assert await c.call("echo", 3) == 3


async def test_extra_keys_reach_a_passthrough_receiver(make_server, bus):
    """tell and call with ``extra=`` add top-level keys that a passthrough receiver finds in
    ``message`` (monument's credentialsObj); reserved keys are refused before sending."""
    client, _ = await make_server(websocket="passthrough")
    seen: list[dict[str, Any]] = []

    async def authorize(event: str, *, message: dict[str, Any], **_: Any) -> Any:
        seen.append(message)
        return {"user": message["credentialsObj"]["user"]}

    bus.on("authorize", authorize)

    async with Client(str(client.make_url("/ws"))) as c:
        c.tell("authorize", extra={"credentialsObj": {"user": "ada"}})
        await eventually(lambda: len(seen) == 1, "the tell's message")
        assert seen[0] == {"event": "authorize", "data": None, "credentialsObj": {"user": "ada"}}
        reply = await c.call("authorize", {"x": 1}, extra={"credentialsObj": {"user": "bob"}})
        assert reply == {"user": "bob"}
        assert seen[1]["credentialsObj"] == {"user": "bob"}
        assert seen[1]["data"] == {"x": 1}
        for key in ("event", "id", "data", "channel", "call"):
            with pytest.raises(ValueError, match=repr(key)):
                c.tell("authorize", extra={key: 1})
            with pytest.raises(ValueError, match=repr(key)):
                await c.call("authorize", extra={key: 1})
        assert c.outbox_length == 0
        assert len(seen) == 2


async def test_max_retries_closes_after_that_many_attempts():
    """With the server gone, ``max_retries=3`` makes exactly three reconnect attempts, each
    after ``retry_interval`` seconds (not the backoff), then closes: ws:close says why and
    waiting calls fail."""
    server = Restartable(lambda ws: None)
    await server.start()
    delays: list[float] = []

    attempts: list[int] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        attempts.append(c.attempt)
        await asyncio.sleep(0)

    c = Client(server.url, max_retries=3, retry_interval=0.5, backoff_initial=100, sleep=sleep)
    assert c.attempt == 0
    closed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    c.on("ws:close", closed.set_result)
    offline: list[Any] = []
    c.on("ws:offline", offline.append)
    await c.connect()
    await server.stop()
    assert await asyncio.wait_for(closed, DEADLINE) == {
        "code": 1006,
        "reason": "no connection after 3 retries",
    }
    assert delays == [0.5, 0.5, 0.5]
    assert attempts == [1, 2, 3]  # counted before each wait, as monument.js counts them
    assert len(offline) == 3
    assert (c.state, c.close_code, c.close_reason) == (
        "closed",
        1006,
        "no connection after 3 retries",
    )
    with pytest.raises(ConnectionLost):
        await c.call("anything")
    await c.close()


async def test_first_connection_with_max_retries_raises_connection_lost():
    """A first connection to a server that is down gives up after ``max_retries`` attempts
    (in place of the default 6) and ``connect()`` raises ConnectionLost with the reason."""
    server = Restartable(lambda ws: None)
    await server.start()
    url = server.url
    await server.stop()
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0)

    c = Client(url, max_retries=2, retry_interval=0.25, sleep=sleep)
    with pytest.raises(ConnectionLost, match="no connection after 2 retries"):
        await c.connect()
    assert delays == [0.25, 0.25]


async def test_retry_interval_reconnects_with_a_fixed_wait():
    """Without a cap the client keeps trying every ``retry_interval`` seconds until the
    server is back, then resumes its client id."""
    server = Restartable(lambda ws: None)
    await server.start()
    gate = Gate(hold_after=4)
    c = Client(server.url, retry_interval=2.0, sleep=gate)
    await c.connect()
    first_id = c.client_id
    await server.stop()
    await eventually(lambda: len(gate.delays) == 5, "five attempts waiting")
    assert gate.delays == [2.0] * 5
    await server.start()
    gate.open.set()
    await eventually(lambda: c.connected, "the client back")
    assert c.client_id == first_id
    assert c.max_retries is None
    assert c.retry_interval == 2.0
    await c.close()
    await server.stop()
