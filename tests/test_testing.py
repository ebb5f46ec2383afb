"""monument_ws.testing.Communicator: a real server and a real client for app tests."""

import pytest
from aiohttp import web

import monument_ws
from monument_ws.testing import Communicator


def news_app() -> web.Application:
    app = web.Application()
    bus = monument_ws.EventBus()
    ws = monument_ws.setup(app, websocket=True, bus=bus)

    @ws.handler("subscribe-me")
    async def subscribe_me(message, socket):
        await socket.send("news", {"n": 1})
        await socket.send("news", {"n": 2})
        return "ok"

    async def health(request):
        return web.json_response({"ok": True})

    app.router.add_get("/health", health)
    return app


async def test_pushes_are_recorded_before_they_are_awaited():
    """receive_event returns pushes that arrived before it was called, in order."""
    async with Communicator(news_app()) as comm:
        assert await comm.call("subscribe-me") == "ok"
        assert await comm.receive_event("news") == {"n": 1}
        assert await comm.receive_event("news") == {"n": 2}
        assert [f["event"] for f in comm.frames] == ["ws:welcome", "news", "news", "subscribe-me"]


async def test_receive_event_times_out_with_a_typed_error():
    """Waiting for a push that never comes raises monument_ws.Timeout."""
    async with Communicator(news_app()) as comm:
        with pytest.raises(monument_ws.Timeout):
            await comm.receive_event("never", timeout=0.05)


async def test_http_on_the_same_server():
    """get() and get_text() reach the app's HTTP routes."""
    async with Communicator(news_app()) as comm:
        assert await comm.get("/health") == {"ok": True}
        assert '"ok": true' in await comm.get_text("/health")


async def test_client_before_start_says_how_to_start():
    """Using the communicator outside `async with` fails with the remedy."""
    comm = Communicator(news_app())
    with pytest.raises(RuntimeError, match="async with Communicator"):
        comm.client  # noqa: B018
