"""The wire protocol: the shared test vectors (tests/vectors/frames.json), Sans-I/O and live.

The vectors are the contract every implementation is checked against; the
browser client's tests read the same file. Here they run through
:mod:`monument_ws.protocol` directly, and the invalid ones through a live
server to check the error frame it answers and that the socket stays open.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monument_ws import protocol
from monument_ws.protocol.errors import from_error_frame
from monument_ws.protocol.frames import (
    COMMANDS,
    CloseCode,
    ErrorCode,
    Frame,
    Invalid,
    Kind,
    Reconnect,
)
from tests.conftest import DEADLINE, Connect, Peer

VECTORS = json.loads((Path(__file__).parent / "vectors" / "frames.json").read_text())
CLIENT = VECTORS["client_frames"]
SERVER = VECTORS["server_frames"]
TEXT_CLIENT = [v for v in CLIENT if "text" in v]
INVALID = [v for v in CLIENT if "error" in v["expect"]]


def named(vectors: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("vector", vectors, ids=[v["name"] for v in vectors])


# --- Sans-I/O ----------------------------------------------------------------


@named(TEXT_CLIENT)
def test_client_vector(vector):
    """protocol.decode turns each client frame into exactly the frame or error the vector says."""
    got = protocol.decode(vector["text"])
    expect = vector["expect"]
    if "frame" in expect:
        want = expect["frame"]
        assert isinstance(got, Frame), got
        assert (got.event, got.id, got.has_data) == (want["event"], want["id"], want["has_data"])
        assert got.data == want.get("data")
        for key, value in want.get("extra", {}).items():
            assert got.raw[key] == value
    else:
        assert isinstance(got, Invalid), got
        assert (got.code.value, got.id) == (expect["error"]["code"], expect["error"]["id"])
        assert got.message


@named(SERVER)
def test_server_vector(vector):
    """protocol.parse_server reads each server frame as the kind and fields the vector says."""
    got = protocol.parse_server(vector["text"])
    expect = vector["expect"]
    if expect.get("ignore"):
        assert got is None
        return
    assert got is not None
    assert (got.kind.value, got.event) == (expect["kind"], expect["event"])
    fields = {k: v for k, v in expect.items() if k not in ("kind", "event")}
    for key, value in fields.items():
        if key == "id":
            assert got.id == value
        elif key == "data":
            assert got.data == value
        elif key == "sync":
            assert got.sync == value
        elif key in ("code", "message"):
            error = from_error_frame(got.raw.get("error"))
            assert getattr(error, key) == value
        else:
            assert got.raw[key] == value
    if "sync" not in fields:
        assert got.sync is None


def test_vectors_cover_every_rule():
    """The vectors keep covering every frame error, every command that needs an id, every kind."""
    codes = {v["expect"]["error"]["code"] for v in INVALID}
    assert codes >= {c.value for c in protocol.FRAME_ERRORS} | {ErrorCode.NOT_FOUND.value}
    without_id = {
        json.loads(v["text"])["event"]
        for v in INVALID
        if "text" in v and v["name"].endswith("without id")
    }
    assert without_id >= {name for name, command in COMMANDS.items() if command.requires_id}
    assert {v["expect"].get("kind") for v in SERVER} >= {k.value for k in Kind}
    assert any("binary" in v for v in INVALID)
    assert VECTORS["limits"] == {
        "max_event_length": protocol.MAX_EVENT_LENGTH,
        "max_string_id_length": protocol.MAX_STRING_ID_LENGTH,
        "max_int_id": protocol.MAX_INT_ID,
    }


def test_encoders_write_what_clients_read():
    """Every server encoder's output parses back as its kind with the same fields."""
    cases = [
        (protocol.reply("echo", 7, "hi"), Kind.REPLY, 7, "hi"),
        (protocol.reply("news", None, 1), Kind.PUSH, None, 1),
        (protocol.chunk("count", "s", 3), Kind.CHUNK, "s", 3),
        (protocol.end("count", "s"), Kind.END, "s", None),
        (protocol.error(ErrorCode.FORBIDDEN, "no", 9), Kind.ERROR, 9, None),
        (protocol.error(ErrorCode.BAD_JSON, "no"), Kind.ERROR, None, None),
        (protocol.push("news", {"a": 1}), Kind.PUSH, None, {"a": 1}),
        (protocol.channel_push("sport", "goal", 2, 42), Kind.PUBLICATION, None, 2),
        (protocol.encode({"event": "ask", "call": 1, "data": 5}), Kind.CALL, None, 5),
    ]
    for wire, kind, request_id, data in cases:
        got = protocol.parse_server(wire)
        assert got is not None
        assert (got.kind, got.id, got.data) == (kind, request_id, data), wire


# --- properties ----------------------------------------------------------------

# Finite floats only: NaN and infinities are written as null (test_non_finite_floats_become_null);
# 64-bit integers only: encode raises TypeError beyond (its documented refusal).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
ids = st.integers(0, protocol.MAX_INT_ID) | st.text(min_size=1, max_size=64)
application_events = st.text(min_size=1, max_size=256).filter(lambda e: not e.startswith("ws:"))
anything = st.one_of(
    st.text(max_size=100),
    st.binary(max_size=100),
    json_values.map(json.dumps),
    st.dictionaries(
        st.sampled_from(["event", "id", "data", "call", "more"]), json_values, max_size=4
    ).map(json.dumps),
)


@given(anything)
def test_decode_never_raises(text):
    """decode returns a Frame or an Invalid with a protocol code for any input, never raises."""
    got = protocol.decode(text)
    if isinstance(got, Invalid):
        assert isinstance(got.code, ErrorCode)
        assert got.id is None or protocol.check_id(got.id) is None
    else:
        assert isinstance(got, Frame)
        assert 1 <= len(got.event) <= protocol.MAX_EVENT_LENGTH
        assert got.id is None or protocol.check_id(got.id) is None


@given(anything)
def test_parse_server_never_raises(text):
    """A client reading any server text gets a ServerFrame or None (ignore), never an exception."""
    got = protocol.parse_server(text)
    assert got is None or isinstance(got.kind, Kind)


@given(application_events, st.none() | ids, json_values)
def test_encode_decode_round_trip(event, request_id, data):
    """A frame a client encodes decodes to the same event, id and data."""
    frame: dict[str, Any] = {"event": event, "data": data}
    if request_id is not None:
        frame["id"] = request_id
    got = protocol.decode(protocol.encode(frame))
    assert isinstance(got, Frame)
    assert (got.event, got.id, got.data, got.has_data) == (event, request_id, data, True)


@pytest.mark.parametrize(
    "literal", ["9223372036854775808", "18446744073709551616", "-9223372036854775809", "1" * 40]
)
def test_integers_outside_signed_64_bits_are_bad_frames(literal):
    """An integer a 64-bit peer cannot hold, anywhere in the frame, is a bad_frame with the id;
    a JSON parser would otherwise make it a float or an unsigned integer without a word."""
    texts = [
        f'{{"event":"echo","id":3,"data":{{"n":[1,{literal}]}}}}',
        f'{{"event":"echo","id":3,"data":{literal}}}',
        f'{{"event":"echo","id":3,"data":"x","extra":{literal}}}',
        f'{{"event":"echo","id":3,"extra":[{literal}]}}',
    ]
    raws: list[str | bytes] = [*texts, *(text.encode() for text in texts)]
    for raw in raws:
        got = protocol.decode(raw)
        assert got == Invalid(
            ErrorCode.BAD_FRAME, "integers must be within the signed 64-bit range", 3
        )


@pytest.mark.parametrize(
    "data",
    [2**63 - 1, -(2**63), "12345678901234567890123", 1.5e300, 12345678901234567890.5, [1e19]],
)
def test_in_range_integers_long_digit_strings_and_floats_decode(data):
    """The 64-bit edges, digits inside strings and long floats are no reason to refuse."""
    got = protocol.decode(json.dumps({"event": "echo", "id": 1, "data": data}).encode())
    assert isinstance(got, Frame)
    assert got.data == data


def test_bytes_that_are_not_utf8_close_with_1007():
    """Invalid UTF-8 in a text frame is no JSON error: the connection closes with 1007."""
    got = protocol.decode(b'{"event":"echo","data":"\xff\xfe"}')
    assert isinstance(got, Invalid)
    assert got.close is protocol.CloseCode.INVALID_DATA
    assert protocol.CloseCode.INVALID_DATA.reconnect is protocol.Reconnect.NEVER
    plain = protocol.decode(b'{"event": nope}')
    assert isinstance(plain, Invalid)
    assert plain.close is None
    assert plain.code == "bad_json"


def test_non_finite_floats_become_null():
    """NaN and infinities encode as null, as JavaScript's JSON.stringify writes them."""
    assert protocol.encode({"a": [float("nan"), float("inf"), -float("inf")]}) == (
        b'{"a":[null,null,null]}'
    )


# --- live ----------------------------------------------------------------------


async def test_invalid_vectors_against_a_live_server(make_server, connect: Connect):
    """Each invalid vector gets its ws:error code (and id) from a real server; the socket stays open."""
    client, _ws = await make_server(rate_limit=0)
    peer = await connect(client)
    for vector in INVALID:
        want = vector["expect"]["error"]
        await send_vector(peer, vector)
        answer = await peer.recv()
        assert answer["event"] == "ws:error", vector["name"]
        assert answer.get("id") == want["id"], vector["name"]
        assert ("id" in answer) == (want["id"] is not None), vector["name"]
        assert answer["error"]["code"] == want["code"], vector["name"]
        assert "Traceback" not in answer["error"]["message"]
        # a good frame in between: the socket is open and the bad-frame count starts again
        assert (await peer.request({"event": "ws:ping", "id": "alive"}))["data"] == {}
    assert not peer.ws.closed


async def test_bad_frames_in_a_row_close_1008(make_server, connect: Connect):
    """max_bad_frames bad frames in a row close the socket with 1008; a good frame resets the count."""
    client, ws = await make_server(max_bad_frames=3)
    peer = await connect(client)
    bad = [v for v in INVALID if v["expect"]["error"]["code"] in protocol.FRAME_ERRORS]
    for vector in bad[:2]:
        await send_vector(peer, vector)
        assert (await peer.recv())["event"] == "ws:error"
    assert (await peer.request({"event": "ws:ping", "id": 1}))["data"] == {}
    for vector in bad[2:4]:
        await send_vector(peer, vector)
        assert (await peer.recv())["event"] == "ws:error"
    await peer.ws.send_bytes(b"binary counts too")
    assert (await peer.recv())["error"]["code"] == "bad_frame"
    assert await peer.closed() == 1008
    assert ws.stats.bad_frames == 5


async def send_vector(peer: Peer, vector: dict[str, Any]) -> None:
    if "binary" in vector:
        await peer.ws.send_bytes(vector["binary"].encode())
    else:
        await peer.send(vector["text"])


async def test_a_text_frame_with_invalid_utf8_closes_1007(make_server, connect: Connect):
    """A TEXT frame whose payload is not UTF-8 closes the connection with 1007."""
    client, ws = await make_server()
    ws.handler("echo")(lambda message, socket: message.data)
    peer = await connect(client)
    await peer.ws.send_frame(b'{"event":"echo","id":1,"data":"\xff"}', aiohttp.WSMsgType.TEXT)
    msg = await peer.ws.receive(timeout=DEADLINE)
    assert msg.type is aiohttp.WSMsgType.CLOSE, f"expected a close, got {msg.type}: {msg.data!r}"
    assert peer.ws.close_code == 1007


async def test_integers_outside_signed_64_bits_are_refused_as_bad_frame(
    make_server, connect: Connect
):
    """An integer beyond the signed 64-bit range anywhere in a frame gets bad_frame with the
    request's id; integers inside it, and long digit strings, echo back exactly."""
    client, ws = await make_server()
    ws.handler("echo")(lambda message, socket: message.data)
    peer = await connect(client)
    refused: dict[str, Any] = {}
    for data in (
        "18446744073709551616",  # 2**64
        "9223372036854775808",  # 2**63: fits unsigned 64 bits, not signed
        "-9223372036854775809",  # -2**63 - 1
        '{"a": [1, 2, 18446744073709551616]}',
    ):
        await peer.send(f'{{"event": "echo", "id": 1, "data": {data}}}')
        answer = await peer.recv()
        refused[data] = (answer.get("id"), answer.get("error", {}).get("code") or answer)
    assert refused == dict.fromkeys(refused, (1, "bad_frame"))
    echoed: dict[str, Any] = {}
    for data in ("9223372036854775807", "-9223372036854775808", '"12345678901234567890123"'):
        await peer.send(f'{{"event": "echo", "id": 2, "data": {data}}}')
        echoed[data] = (await peer.recv()).get("data")
    assert echoed == {data: json.loads(data) for data in echoed}


async def test_a_client_offering_only_another_version_is_closed_1002_with_the_reason(make_server):
    """Offering subprotocols without monument.v1 (say a v2 client) is refused: closed with 1002
    and a reason naming the version this server speaks, never served as version 1."""
    client, ws = await make_server()
    sock = await client.ws_connect("/ws", protocols=("monument.v2",))
    message = await sock.receive()
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert message.data == 1002
    assert message.extra == "this server speaks monument.v1 only; offered: monument.v2"
    assert ws.stats.refused["protocol_version"] == 1
    assert CloseCode(1002).reconnect is Reconnect.NEVER


async def test_offering_v1_among_others_or_nothing_at_all_is_served_as_v1(
    make_server, connect: Connect
):
    client, ws = await make_server()
    among = await connect(client, protocols=("monument.v2", "monument.v1"))
    assert among.ws.protocol == "monument.v1"
    bare = await connect(client, protocols=())
    assert bare.ws.protocol is None
    assert ws.stats.refused["protocol_version"] == 0
