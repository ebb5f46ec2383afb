from tests.conftest import Connect


async def test_echo_handler_answers_over_a_real_socket(make_server, connect: Connect):
    """A handler's return value answers the request's id."""
    client, ws = await make_server()

    @ws.handler("echo")
    async def echo(message, socket):
        return message.data

    peer = await connect(client)
    assert await peer.request({"event": "echo", "id": 1, "data": {"a": 1}}) == {
        "event": "echo",
        "id": 1,
        "data": {"a": 1},
    }
