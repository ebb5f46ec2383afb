"""The ws: command registry: every protocol command has exactly one handler, of one kind."""

from __future__ import annotations

import pytest

from monument_ws.connection.commands import Commands
from monument_ws.connection.socket import INLINE_COMMANDS
from monument_ws.protocol.frames import COMMANDS


async def nothing(socket, frame):
    return None


def requests_for(names):
    return {name: nothing for name in names}


async def test_the_servers_registry_covers_the_protocol(make_server, connect):
    """A plugin's registry holds every protocol command once, and each answers over a socket
    (a command with no handler would get not_found; ws:ping's inline answer is checked)."""
    client, ws = await make_server()
    assert ws.commands.inline.keys() | ws.commands.requests.keys() == COMMANDS.keys()
    assert not ws.commands.inline.keys() & ws.commands.requests.keys()
    peer = await connect(client)
    assert await peer.request({"event": "ws:ping", "id": 1}) == {
        "event": "ws:ping",
        "id": 1,
        "data": {},
    }
    assert await peer.request({"event": "ws:heartbeat", "id": 2}) == {
        "event": "ws:heartbeat",
        "id": 2,
        "data": {},
    }


def test_a_missing_command_is_refused():
    """Building a registry that forgets a protocol command raises, naming it."""
    names = COMMANDS.keys() - INLINE_COMMANDS.keys() - {"ws:presence"}
    with pytest.raises(ValueError, match="missing \\['ws:presence'\\]"):
        Commands(INLINE_COMMANDS, requests_for(names))


def test_an_unknown_or_doubled_command_is_refused():
    """A command the protocol does not know, or one listed under both kinds, raises."""
    names = COMMANDS.keys() - INLINE_COMMANDS.keys()
    with pytest.raises(ValueError, match="not in the protocol \\['ws:nope'\\]"):
        Commands(INLINE_COMMANDS, requests_for(names | {"ws:nope"}))
    with pytest.raises(ValueError, match="listed twice \\['ws:ping'\\]"):
        Commands(INLINE_COMMANDS, requests_for(names | {"ws:ping"}))
