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
    "backoff_initial": 0.5,
    "backoff_max": 7.0,
    "long_delay": 3.0,
    "queue_limit": 12,
    "call_timeout": 4.0,
    "heartbeat": False,
    "headers": {"X-Test": "1"},
    "ssl": False,
    "queue_size": 5,
    "queue_ttl": 9.0,
}


def test_every_option_reads_back_and_can_be_changed():
    c = Client(["ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws"], **OPTIONS)  # type: ignore[arg-type]
    assert {name: getattr(c, name) for name in OPTIONS} == OPTIONS
    assert (c.urls, c.url) == (["ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws"], c.urls[0])
    context = ssl.create_default_context()
    changed = {
        "reconnect": True,
        "backoff_initial": 0.1,
        "backoff_max": 1.0,
        "long_delay": 1.5,
        "queue_limit": 3,
        "call_timeout": 0.5,
        "heartbeat": True,
        "headers": {},
        "ssl": context,
        "queue_size": 1,
        "queue_ttl": 2.0,
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
    assert (c.close_code, c.close_reason, c.refused, c.queue_dropped) == (None, "", 0, 0)
    assert (c.queued, c.enqueued, c.subscriptions) == (0, 0, {})


async def test_changed_options_take_effect_over_a_real_socket(make_server):
    """call_timeout and queue_limit changed after connecting are the ones the parts use."""
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
        c.queue_limit = 0
        with pytest.raises(QueueFull, match="0 frames"):
            c.tell("note")
    assert (c.state, c.close_code, c.close_reason) == ("closed", 1000, "closed by the client")
