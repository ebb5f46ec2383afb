"""Client is a facade over one part per job: its options and state live in those parts.

Every option keeps its attribute on the Client, reads back what was given, and,
when changed, takes effect where the part uses it; the state attributes show what
the connection knows. The behaviour of each part is tested through the Client
elsewhere (tests/test_client.py, test_middleware.py, test_peerqueue.py, test_sync.py).
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

from monument_ws import Timeout
from monument_ws.client import Client
from monument_ws.protocol.errors import QueueFull

OPTIONS = {
    "reconnect": False,
    "max_retries": 4,
    "retry_interval": 1.5,
    "backoff_initial": 0.5,
    "backoff_max": 7.0,
    "long_delay": 3.0,
    "outbox_limit": 12,
    "call_timeout": 4.0,
    "heartbeat": False,
    "headers": {"X-Test": "1"},
    "ssl": False,
    "peer_queue_size": 5,
    "peer_queue_ttl": 9.0,
}


def test_every_option_reads_back_and_can_be_changed():
    c = Client(["ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws"], **OPTIONS)  # type: ignore[arg-type]
    assert {name: getattr(c, name) for name in OPTIONS} == OPTIONS
    assert (c.urls, c.url) == (["ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws"], c.urls[0])
    context = ssl.create_default_context()
    changed: dict[str, object] = {
        "reconnect": True,
        "max_retries": None,
        "retry_interval": None,
        "backoff_initial": 0.1,
        "backoff_max": 1.0,
        "long_delay": 1.5,
        "outbox_limit": 3,
        "call_timeout": 0.5,
        "heartbeat": True,
        "headers": {},
        "ssl": context,
        "peer_queue_size": 1,
        "peer_queue_ttl": 2.0,
        "urls": ["ws://127.0.0.1:3/ws"],
    }
    for name, value in changed.items():
        setattr(c, name, value)
    assert {name: getattr(c, name) for name in changed} == changed
    assert c.url == "ws://127.0.0.1:3/ws"


def test_state_before_connecting():
    c = Client("ws://127.0.0.1:1/ws")
    assert (c.state, c.connected, c.client_id, c.resume, c.welcome) == (
        "idle",
        False,
        None,
        None,
        {},
    )
    assert (c.close_code, c.close_reason, c.refused, c.peer_queue_dropped) == (None, "", 0, 0)
    assert (c.outbox_length, c.enqueued, c.subscriptions) == (0, 0, {})
    assert c.stage is None  # the first welcome says it


async def test_changed_options_take_effect_over_a_real_socket(make_server):
    """call_timeout and outbox_limit changed after connecting are the ones the parts use."""
    client, ws = await make_server()
    never = asyncio.Event()

    async def stall(message, socket):
        await never.wait()

    ws.handler("stall")(stall)
    async with Client(str(client.make_url("/ws"))) as c:
        assert (c.state, c.connected) == ("open", True)
        assert (c.client_id, c.resume) == (c.welcome["client_id"], c.welcome["resume"])
        c.call_timeout = 0.1
        with pytest.raises(Timeout, match=r"within 0\.1 s"):
            await c.call("stall")
        c.outbox_limit = 0
        with pytest.raises(QueueFull, match="0 frames"):
            c.tell("note")
    assert (c.state, c.close_code, c.close_reason) == ("closed", 1000, "closed by the client")


def test_old_names_still_work_and_warn():
    """The names from before the outbox and peer-queue renames: the constructor takes them,
    and they read (and set) the new attributes, each use with a DeprecationWarning."""
    old = {"queue_limit": 7, "queue_size": 4, "queue_ttl": 11.0}
    with pytest.warns(DeprecationWarning, match="deprecated") as warned:
        c = Client("ws://127.0.0.1:1/ws", **old)  # type: ignore[arg-type]
    assert [str(w.message) for w in warned] == [
        "Client.queue_limit is deprecated and will be removed in 1.0; use outbox_limit",
        "Client.queue_size is deprecated and will be removed in 1.0; use peer_queue_size",
        "Client.queue_ttl is deprecated and will be removed in 1.0; use peer_queue_ttl",
    ]
    assert {w.filename for w in warned} == {__file__}
    assert (c.outbox_limit, c.peer_queue_size, c.peer_queue_ttl) == (7, 4, 11.0)

    renamed = {
        "queue_limit": "outbox_limit",
        "queue_size": "peer_queue_size",
        "queue_ttl": "peer_queue_ttl",
        "queue_dropped": "peer_queue_dropped",
        "queued": "outbox_length",
    }
    for name, new in renamed.items():
        with pytest.warns(DeprecationWarning, match=rf"^Client\.{name} is .* use {new}$"):
            assert getattr(c, name) == getattr(c, new)
    for name, value in {"queue_limit": 2, "queue_size": 3, "queue_ttl": 5.0}.items():
        with pytest.warns(DeprecationWarning, match=rf"^Client\.{name} "):
            setattr(c, name, value)
    with pytest.warns(DeprecationWarning, match=r"^Client\.queue_dropped "):
        c.queue_dropped = 1
    assert (c.outbox_limit, c.peer_queue_size, c.peer_queue_ttl, c.peer_queue_dropped) == (
        2,
        3,
        5.0,
        1,
    )
    with pytest.raises(AttributeError, match="'queued'"):
        c.queued = 1  # type: ignore[misc]
    with pytest.raises(TypeError, match="'queue_limt'"):
        Client("ws://127.0.0.1:1/ws", queue_limt=1)
