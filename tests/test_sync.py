"""SYNC: patches reconstruct every object (property-based), memory stays bounded, and the client applies them."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monument_ws import MonumentWS
from monument_ws.client import Client
from monument_ws.protocol import patches as sync
from monument_ws.protocol.patches import SyncState
from monument_ws.yields import sync as sync_yield

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
keys = st.sampled_from(
    ["a", "b", "c", "d", "/", "~1", ""]
)  # few keys: objects overlap; pointer escapes
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=8,
)
json_objects = st.dictionaries(keys, json_values, max_size=5) | st.lists(json_values, max_size=5)


def canonical(value: Any) -> bytes:
    """Byte-exact JSON (true is not 1, 1.0 is not 1), key order aside."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def evolve(steps: list[tuple[Any, bool]]) -> list[Any]:
    """The objects a server sends: each step is a fresh object, or (flag) merged into the last one,
    so both unrelated objects and small changes of a big one occur."""
    out: list[Any] = []
    for value, merge in steps:
        last = out[-1] if out else None
        if merge and isinstance(last, dict) and isinstance(value, dict):
            value = {k: v for k, v in {**last, **value}.items() if k != "d"}  # removals too
        elif merge and isinstance(last, list) and isinstance(value, list):
            value = last[: len(value)] + value[::-1]
        out.append(value)
    return out


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(st.tuples(json_objects, st.booleans()), min_size=1, max_size=6),
    limit=st.sampled_from([0, 64, 512, 1 << 20]),
)
def test_any_sequence_of_objects_is_reconstructed(steps, limit):
    """Whatever the objects and memory limit, the client's object after each frame is the server's."""
    server = SyncState(limit)
    current: Any = None
    for value in evolve(steps):
        mode, data = server.frame_data("board", value)
        wire = orjson.loads(orjson.dumps(data))  # what really crosses the socket
        current = sync.apply(current, mode, wire)
        assert canonical(current) == canonical(value)
        if mode == "patch":
            assert len(orjson.dumps(data)) < len(orjson.dumps(value))
        assert server.size <= limit


def test_memory_per_socket_is_bounded_least_recently_synced_first():
    """Past the byte limit the least recently synced events are forgotten and go whole next time."""
    state = SyncState(limit=300)
    big = {"rows": list(range(40))}  # ~120 bytes encoded
    for event in ("a", "b"):
        assert state.frame_data(event, big)[0] == "full"
    assert state.frame_data("a", {**big, "x": 1})[0] == "patch"  # a is now the most recent
    assert state.frame_data("c", big)[0] == "full"  # pushes b out
    assert len(state) == 2
    assert state.size <= 300
    assert state.frame_data("b", big)[0] == "full"
    huge = {"rows": list(range(1000))}
    assert state.frame_data("h", huge)[0] == "full"
    assert state.frame_data("h", {**huge, "x": 1})[0] == "full"  # never remembered
    assert state.size <= 300


def test_a_patch_that_does_not_apply_is_refused():
    """apply() raises SyncError for an unknown mode or a patch that does not fit the object."""
    with pytest.raises(sync.SyncError):
        sync.apply({"a": 1}, "patch", [{"op": "remove", "path": "/missing"}])
    with pytest.raises(sync.SyncError):
        sync.apply({"a": 1}, "diff", [])


def mutate(rng: random.Random, board: dict[str, Any]) -> dict[str, Any]:
    board = orjson.loads(orjson.dumps(board))
    for _ in range(rng.randint(1, 3)):
        row = f"r{rng.randint(0, 30)}"
        choice = rng.random()
        if choice < 0.2:
            board.pop(row, None)
        elif choice < 0.6:
            board[row] = {"score": rng.randint(0, 100), "tags": ["x"] * rng.randint(0, 3)}
        else:
            board.setdefault(row, {"score": 0, "tags": []})["score"] += 1
    return board


async def test_client_reconstructs_the_object_over_a_real_socket(make_server):
    """Streamed and pushed SYNC frames: the client's synced object equals the server's last one."""
    client_, plugin_ = await make_server()
    plugin: MonumentWS = plugin_
    rng = random.Random(7)
    boards = [{f"r{n}": {"score": n, "tags": []} for n in range(30)}]
    for _ in range(40):
        boards.append(mutate(rng, boards[-1]))

    @plugin.handler("board")
    async def board(message: Any, socket: Any) -> Any:
        for value in boards:
            yield sync_yield(value)
        yield sync_yield(boards[-1], event="mirror")

    async with Client(str(client_.make_url("/ws"))) as client:
        modes: list[str] = []
        client.listen(lambda frame: modes.append(frame.get("sync", "-")))
        mirrored: list[Any] = []
        client.on("mirror", mirrored.append)
        received = [value async for value in client.stream("board")]
        assert [canonical(v) for v in received] == [canonical(b) for b in boards]
        assert canonical(client.synced("board")) == canonical(boards[-1])
        assert canonical(client.synced("mirror")) == canonical(boards[-1])
        assert mirrored == [client.synced("mirror")]
        assert modes[0] == "full"
        assert modes.count("patch") > 30  # small changes of a big object travel as patches
        assert client.synced("unknown", "nothing") == "nothing"
