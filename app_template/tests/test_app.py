"""The app's own tests: a real server on an ephemeral port and a real client."""

from app import create_app

from monument_ws.testing import Communicator


async def test_index_page():
    """GET / serves the demo page."""
    async with Communicator(create_app()) as comm:
        assert "monument_ws" in await comm.get_text("/")


async def test_greeting_over_http_and_socket_is_the_same():
    """One provider answers GET /api/greeting and data:get:greeting."""
    async with Communicator(create_app()) as comm:
        assert await comm.call("data:get:greeting") == await comm.get("/api/greeting")


async def test_echo():
    """echo replies with the request's data."""
    async with Communicator(create_app()) as comm:
        assert await comm.call("echo", {"x": [1, 2]}) == {"x": [1, 2]}


async def test_countdown_streams():
    """countdown streams 3, 2, 1 and ends."""
    async with Communicator(create_app()) as comm:
        assert [n async for n in comm.stream("countdown", 3)] == [3, 2, 1]


async def test_greet_me_calls_the_client_back():
    """greet-me asks the client for its name with a server-to-client call."""
    async with Communicator(create_app()) as comm:
        comm.client.perform("ask-name", lambda data: "Ada")
        assert await comm.call("greet-me") == "Hello, Ada!"


async def test_chat_channel():
    """Subscribers of chat may publish to it and receive what is published."""
    async with Communicator(create_app()) as comm:
        received = []
        await comm.client.subscribe("chat", received.append)
        offset = await comm.client.publish("chat", "message", {"text": "hi"})
        await comm.receive_event("message")
        assert [(m.event, m.data, m.offset) for m in received] == [
            ("message", {"text": "hi"}, offset)
        ]


async def test_a_token_names_the_user():
    """A valid token in the Authorization header authenticates the socket as its user."""
    from app.auth import make_token

    async with Communicator(
        create_app(), headers={"Authorization": "Bearer " + make_token("ada")}
    ) as comm:
        assert comm.client.welcome["stage"] == "authenticated"
        assert comm.client.welcome["channels"]["user"]["channel"] == "$user:ada"


async def test_a_bad_token_is_refused_with_4401():
    """A forged token is refused: the socket closes with 4401 and the reason."""
    import pytest

    from monument_ws import ConnectionLost

    with pytest.raises(ConnectionLost):
        async with Communicator(create_app(), headers={"Authorization": "Bearer ada.1.forged"}):
            pass


async def test_the_page_loads_the_browser_client():
    """GET / imports monument.js, which the plugin serves at /monument_ws/client.js."""
    async with Communicator(create_app()) as comm:
        assert 'from "/monument_ws/client.js"' in await comm.get_text("/")
        assert "export class Client" in await comm.get_text("/monument_ws/client.js")
