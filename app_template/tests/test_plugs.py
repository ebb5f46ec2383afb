"""The plugs/ folder: each file answers the event it is named after."""

from app import create_app

from monument_ws.testing import Communicator


async def test_hello_plug_answers():
    """plugs/hello.py answers the event hello."""
    async with Communicator(create_app()) as comm:
        assert await comm.call("hello", "Ada") == "Hello, Ada!"


async def test_shout_reaches_every_socket():
    """plugs/room/shout.py broadcasts to every socket, the sender included."""
    async with Communicator(create_app()) as comm:
        assert [r async for r in comm.stream("room/shout", "hi")] == ["shouted"]
        assert (await comm.receive_event("room/shout"))["text"] == "hi"


async def test_scoreboard_syncs_the_whole_board():
    """plugs/scoreboard.py sends the board once, then patches; the client holds the whole board."""
    async with Communicator(create_app()) as comm:
        boards = [b async for b in comm.stream("scoreboard", 3)]
        assert comm.client.synced("scoreboard") == boards[-1]
        assert boards[-1]["player2"] == 1
        assert [f.get("sync") for f in comm.frames if f.get("event") == "scoreboard"][:3] == [
            "full",
            "patch",
            "patch",
        ]
