"""The super-scaled-sockets endpoint over real sockets: its client (tests/sss_client.py, written
from the documented format) against a server serving ``endpoints={"/sss": "super-scaled-sockets"}``
beside the native route, sharing handlers, channels, policies, kicks and history."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from monument_ws import EventBus, MonumentWS
from monument_ws.connection import auth
from monument_ws.protocol import codecs
from monument_ws.protocol.codecs.super_scaled_sockets import (
    MAX_EPOCHS,
    MAX_PENDING,
    Session,
    SuperScaledSockets,
    since,
    uid,
)
from monument_ws.protocol.errors import Unauthorized
from tests import sss_client as sss
from tests.conftest import REDIS_URL, Connect, eventually
from tests.sss_client import SSSPeer
from tests.test_security import closed_codes

ENDPOINTS = {"/sss": "super-scaled-sockets"}
UNKNOWN = {
    "name": "Super Scaled Sockets Error",
    "message": "Unknown request topic sent from client",
}


async def sss_connect(client: Any, path: str = "/sss", **kwargs: Any) -> SSSPeer:
    return SSSPeer(await client.ws_connect(path, **kwargs))


def user_parser() -> Any:
    async def parse(request: web.Request) -> auth.Session:
        user = request.query.get("user")
        if user == "nobody":
            raise Unauthorized("no such user")
        return auth.Session(user=user)

    return parse


def handlers(ws: MonumentWS) -> None:
    @ws.handler("serverTime")
    async def server_time(message: Any, socket: Any) -> Any:
        return {"now": 42, "asked": message.data}

    @ws.handler("poke")
    async def poke(message: Any, socket: Any) -> None:
        await socket.send("poked", {"by": message.data})

    @ws.handler("shout")
    async def shout(message: Any, socket: Any) -> None:
        await ws.broadcast("shouted", message.data)

    @ws.handler("refuse")
    async def refuse(message: Any, socket: Any) -> Any:
        from monument_ws.protocol.errors import Forbidden

        raise Forbidden("not you")


def liked_handler(ws: MonumentWS) -> list[Any]:
    told: list[Any] = []

    @ws.handler("likedMsg")
    async def liked(message: Any, socket: Any) -> None:
        told.append(message.data)
        await socket.send("thanks", message.data)

    return told


async def test_begin_without_a_user_gives_the_heartbeat_only(make_server):
    client, _ws = await make_server(endpoints=ENDPOINTS, heartbeat=20)
    peer = await sss_connect(client)
    assert await peer.begin() == {"sys": sss.BEGIN, "prot": {"hb": True, "hbInterval": 20000}}


async def test_begin_with_a_user_names_its_channel_and_last_uid(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS, heartbeat=0)
    ws.session_parser = user_parser()
    for n in range(2):
        await ws.publish_to_user("ada", "note", n)
    peer = await sss_connect(client, "/sss?user=ada")
    got = await peer.begin()
    assert got["prot"] == {}  # heartbeat 0: the client runs no heartbeat timer
    assert got["channel"] == "$user:ada"
    assert since(got["lastUid"])[1] == 2  # type: ignore[index]
    await ws.publish_to_user("ada", "note", "live")
    feed = await peer.recv()
    assert {k: feed[k] for k in ("sys", "topic", "msg", "channel")} == {
        "sys": sss.FEED,
        "topic": "note",
        "msg": "live",
        "channel": "$user:ada",
    }
    assert since(feed["uid"]) == (since(got["lastUid"])[0], 3)  # type: ignore[index]


async def test_subscribe_with_a_query_allowed_and_refused_by_policy(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    seen: list[Any] = []

    def policy(socket: Any, channel: str, query: Any) -> bool:
        seen.append(query)
        return bool(query == {"pw": "sesame"})

    ws.namespaces.add("private:*", subscribe=policy)
    peer = await sss_connect(client)
    await peer.begin()
    refused = await peer.subscribe("private:room", {"pw": "wrong"})
    assert (refused["result"], refused["channel"], refused["err"]["code"]) == (
        False,
        "private:room",
        "forbidden",
    )
    allowed = await peer.subscribe("private:room", {"pw": "sesame"})
    assert (allowed["result"], allowed["channel"]) == (True, "private:room")
    assert since(allowed["lastUid"]) is not None
    assert seen == [{"pw": "wrong"}, {"pw": "sesame"}]
    bad = await peer.subscribe("no spaces allowed")
    assert (bad["result"], bad["err"]["code"]) == (False, "bad_frame")


async def test_publications_reach_sss_and_native_sockets_both_ways(make_server, connect: Connect):
    client, _ws = await make_server(
        endpoints=ENDPOINTS, channels={"chat:*": {"publish": "subscribers"}}
    )
    peer = await sss_connect(client)
    await peer.begin()
    subscribed = await peer.subscribe("chat:lobby")
    native = await connect(client)
    await native.request({"event": "ws:subscribe", "id": 1, "data": {"channel": "chat:lobby"}})
    await native.request(
        {
            "event": "ws:publish",
            "id": 2,
            "data": {"channel": "chat:lobby", "event": "say", "data": "from native"},
        }
    )
    feed = await peer.until(sss.FEED)
    epoch = since(subscribed["lastUid"])[0]  # type: ignore[index]
    assert feed == {
        "sys": sss.FEED,
        "topic": "say",
        "msg": "from native",
        "channel": "chat:lobby",
        "uid": uid(epoch, 1),
    }
    # the format cannot publish, but ws:publish is a topic an ask may name
    answer = await peer.ask(
        "ws:publish", {"channel": "chat:lobby", "event": "say", "data": "from sss"}
    )
    assert answer["msg"]["offset"] == 2
    assert await native.recv() == {
        "event": "say",
        "channel": "chat:lobby",
        "data": "from sss",
        "offset": 2,
    }


async def test_a_publisher_left_out_gets_updatesub_and_does_not_replay_its_own(make_server):
    """super-scaled-sockets' socket.publish: the others get the FEED, the publisher UPDATESUB."""
    client, _ws = await make_server(
        endpoints=ENDPOINTS, channels={"chat:*": {"publish": "subscribers"}}
    )
    sender, other = await sss_connect(client), await sss_connect(client)
    for peer in (sender, other):
        await peer.begin()
        await peer.subscribe("chat:r")
    msg = {"channel": "chat:r", "event": "say", "data": "mine", "exclude_sender": True}
    await sender.send({"sys": sss.ASK, "topic": "ws:publish", "msg": msg, "id": "id_p"})
    update = await sender.recv()
    epoch = since(sender.last_uid["chat:r"])[0]  # type: ignore[index]
    assert update == {"sys": sss.UPDATESUB, "channel": "chat:r", "uid": uid(epoch, 1)}
    assert (await sender.recv()) == {
        "sys": sss.RESPONSE,
        "id": "id_p",
        "msg": {"offset": 1, "epoch": epoch},
    }
    assert (await other.recv())["uid"] == uid(epoch, 1)
    assert sender.last_uid["chat:r"] == uid(epoch, 1)


async def test_ask_response_and_the_unknown_topic_error(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    peer = await sss_connect(client)
    await peer.begin()
    got = await peer.ask("serverTime", [1, "é"])
    assert got["msg"] == {"now": 42, "asked": [1, "é"]}
    assert "err" not in got
    assert (await peer.ask("no/such/topic", 1))["err"] == UNKNOWN
    failed = await peer.ask("refuse")
    assert failed["err"]["code"] == "forbidden"
    assert failed["err"]["name"] == UNKNOWN["name"]
    await peer.send({"sys": sss.ASK, "topic": "serverTime", "msg": None, "id": 7})
    assert (await peer.recv())["id"] == 7  # any id is echoed as it was


async def test_tell_both_ways_and_broadcast(make_server, connect: Connect):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    told = liked_handler(ws)
    peer, other = await sss_connect(client), await sss_connect(client)
    native = await connect(client)
    for p in (peer, other):
        await p.begin()
    await peer.tell("likedMsg", 17)
    assert await peer.recv() == {"sys": sss.TELL, "topic": "thanks", "msg": 17}
    assert told == [17]
    await peer.tell("shout", "hello")
    for p in (peer, other):
        assert await p.recv() == {"sys": sss.BROADCAST, "topic": "shouted", "msg": "hello"}
    assert await native.recv() == {"event": "shouted", "data": "hello"}
    await peer.tell("no/such/tell", 1)  # no answer, as natively
    await peer.tell("poke", "me")
    assert await peer.recv() == {"sys": sss.TELL, "topic": "poked", "msg": {"by": "me"}}


async def test_a_kick_is_boot_then_the_close_the_client_reads_as_booted(make_server, bus: EventBus):
    """BOOT, then close 4001 (a 4409 would make the client reconnect); natively it is 4409."""
    client, ws = await make_server(endpoints=ENDPOINTS)
    ws.session_parser = user_parser()
    codes = closed_codes(bus)
    peer = await sss_connect(client, "/sss?user=bob")
    await peer.begin()
    await ws.kick(user="bob", reason="go away")
    assert await peer.recv() == {"sys": sss.BOOT, "reason": "go away"}
    assert await peer.closed() == (4001, "go away")
    await eventually(lambda: bool(codes), "SOCKET_CLOSED")
    assert codes == [4409]


async def test_resync_after_a_reconnect_gets_exactly_the_missed_publications(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    ws.session_parser = user_parser()
    ws.namespaces.add("room:*", subscribe=lambda socket, channel, query: query == "key")
    first = await sss_connect(client, "/sss?user=ada")
    await first.begin()
    await first.subscribe("news")
    await first.subscribe("room:1", "key")
    await ws.publish("news", "item", "seen")
    assert (await first.recv())["msg"] == "seen"
    await first.ws.close()  # dropped
    for n in range(3):
        await ws.publish("news", "item", n)
    await ws.publish("room:1", "said", "hi")
    await ws.publish_to_user("ada", "note", "while away")  # replayed, unlike the original
    second = await sss_connect(client, "/sss?user=ada")
    answer = await second.resync(first)
    assert answer["result"] == {"$user:ada": True, "news": True, "room:1": True}
    by_channel: dict[str, list[Any]] = {}
    for record in answer["records"]:
        assert record["sys"] == sss.FEED
        by_channel.setdefault(record["channel"], []).append(record["msg"])
    assert by_channel == {"news": [0, 1, 2], "room:1": ["hi"], "$user:ada": ["while away"]}
    await ws.publish("news", "item", "live")
    assert (await second.recv())["msg"] == "live"  # live again, nothing twice
    assert since(second.last_uid["news"])[1] == 5  # type: ignore[index]


async def test_resync_results_false_for_a_refused_or_unreadable_channel(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    ws.namespaces.add("room:*", subscribe=lambda socket, channel, query: query == "key")
    peer = await sss_connect(client)
    await peer.send(
        {
            "sys": sss.SYNC,
            "subscriptions": [
                {"channel": "room:1", "lastUid": None, "query": "wrong"},
                {"channel": "news", "lastUid": "not a uid", "query": None},
                {"channel": "fresh", "lastUid": None},
                {"channel": "old", "lastUid": "gone-epoch:3"},
            ],
        }
    )
    got = await peer.until(sss.SYNC)
    assert got == {
        "sys": sss.SYNC,
        "result": {"room:1": False, "news": False, "fresh": True, "old": False},
        "records": [],
    }
    await peer.send({"sys": sss.SYNC, "subscriptions": []})
    assert await peer.recv() == {"sys": sss.SYNC, "result": {}, "records": []}


async def test_heartbeats_are_sent_and_the_answers_taken(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS, heartbeat=0.5)
    handlers(ws)
    peer = await sss_connect(client)
    assert (await peer.begin())["prot"] == {"hb": True, "hbInterval": 500}
    while peer.beats < 2:  # recv answers each h with h, which the server takes silently
        msg = await peer.ws.receive(timeout=sss.DEADLINE)
        assert msg.data == "h"
        peer.beats += 1
        await peer.ws.send_str("h")
    assert (await peer.ask("serverTime"))["msg"]["now"] == 42


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "a JSON object"),
        ('{"topic": "x"}', "unknown sys code None"),
        ('{"sys": 8}', "unknown sys code 8"),
        ('{"sys": "5"}', "unknown sys code '5'"),
        ('{"sys": true, "channel": "a", "id": "x"}', "unknown sys code True"),
        ('{"sys": 3.0}', "unknown sys code 3.0"),
        ('{"sys": 5, "topic": "serverTime"}', "needs an 'id'"),
        ('{"sys": 5, "topic": "serverTime", "id": {"a": 1}}', "needs an 'id'"),
        ('{"sys": 5, "topic": "serverTime", "id": true}', "needs an 'id'"),
        ('{"sys": 5, "topic": 3, "id": "x"}', "needs a 'topic'"),
        ('{"sys": 6, "msg": 1}', "needs a 'topic'"),
        ('{"sys": 1, "channel": "a"}', "needs an 'id'"),
        (json.dumps({"sys": 1, "channel": "a", "id": "x" * 65}), "needs an 'id'"),
        ('{"sys": 2}', "needs a 'channel'"),
        ('{"sys": 4}', "needs 'subscriptions'"),
        ('{"sys": 4, "subscriptions": [{"lastUid": "x"}]}', "each subscription"),
        ('{"sys": 4, "subscriptions": [7]}', "each subscription"),
    ],
)
async def test_bad_input_is_the_formats_error_and_the_socket_goes_on(
    make_server, raw: str, says: str
):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    peer = await sss_connect(client)
    await peer.ws.send_str(raw)
    got = await peer.recv()
    assert set(got) == {"err"}, got
    assert (got["err"]["name"], got["err"]["code"]) == (UNKNOWN["name"], "bad_frame")
    assert says in got["err"]["message"]
    assert (await peer.ask("serverTime"))["msg"]["now"] == 42


async def test_an_unsubscribe_stops_the_feed(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    peer = await sss_connect(client)
    await peer.begin()
    await peer.subscribe("news")
    await peer.send({"sys": sss.UNSUBSCRIBE, "channel": "news"})
    await peer.subscribe("other")  # a socket's (un)subscribes run in arrival order
    await ws.publish("news", "item", "unseen")
    await ws.publish("other", "item", "seen")
    assert (await peer.recv())["msg"] == "seen"


def test_an_unsubscribes_reply_is_not_sent_and_its_error_is():
    session = SuperScaledSockets().session()
    (request,) = session.decode(b'{"sys": 2, "channel": "news"}', binary=False)
    assert isinstance(request, bytes)
    sent = json.loads(request)
    assert (sent["event"], sent["data"]) == ("ws:unsubscribe", {"channel": "news"})
    assert session.encode(b'{"event":"ws:unsubscribe","id":%d,"data":{}}' % sent["id"]) == b""
    (request,) = session.decode(b'{"sys": 2, "channel": "news"}', binary=False)
    assert isinstance(request, bytes)
    error = {
        "event": "ws:error",
        "id": json.loads(request)["id"],
        "error": {"code": "unavailable", "message": "m"},
    }
    got = json.loads(session.encode(json.dumps(error).encode())[2:])
    assert got == {"err": {"name": UNKNOWN["name"], "code": "unavailable", "message": "m"}}


async def test_a_binary_frame_closes_with_1003_and_bad_frames_in_a_row_with_1008(make_server):
    client, _ws = await make_server(endpoints=ENDPOINTS, max_bad_frames=2)
    peer = await sss_connect(client)
    await peer.ws.send_bytes(b'{"sys": 3}')
    code, reason = await peer.closed()
    assert code == 1003
    assert "binary frames are not supported" in reason
    peer = await sss_connect(client)
    for _ in range(2):
        await peer.ws.send_str("{")
    assert "err" in await peer.recv()
    assert (await peer.closed())[0] == 1008


async def test_the_session_parser_refuses_at_the_upgrade(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    ws.session_parser = user_parser()
    peer = await sss_connect(client, "/sss?user=nobody")
    assert await peer.closed() == (4401, "no such user")


def test_uids_read_back_and_what_is_not_one():
    assert since(uid("e:1", 5)) == ("e:1", 5)
    assert uid(None, 5) == "5"
    for odd in ("5", ":5", "e:", "e:-1", "e:\uff15", None, 5, ["e", 5]):
        assert since(odd) is None


def test_pending_requests_and_epochs_are_bounded():
    codec = codecs.codec("super-scaled-sockets")
    assert isinstance(codec, SuperScaledSockets)
    session = codec.session()
    assert isinstance(session, Session)
    ask = json.dumps({"sys": sss.ASK, "topic": "t", "id": "x" * 64, "msg": None}).encode()
    for _ in range(MAX_PENDING + 10):
        session.decode(ask, binary=False)
    assert session.pending == MAX_PENDING
    for n in range(1, MAX_PENDING + 11):
        session.encode(b'{"event":"t","id":%d,"data":1}' % n)
    assert session.pending == 0
    for n in range(MAX_EPOCHS + 5):
        codec.learn(f"c{n}", "e")
    assert codec.epoch("c0") is None
    assert codec.epoch(f"c{MAX_EPOCHS + 4}") == "e"
    # a channel whose epoch was forgotten: its FEED uid holds the offset only
    feed = codec.encode_shared(b'{"event":"x","channel":"c0","data":1,"offset":9}')
    assert json.loads(feed[2:])["uid"] == "9"


def test_what_is_not_a_native_frame_is_dropped_not_raised():
    codec = SuperScaledSockets()
    session = codec.session()
    for odd in (b"not json", b"[1]", b'{"data": 1}'):
        assert session.encode(odd) == b""
        assert codec.encode_shared(odd) == b""
    assert session.closing(1000, "bye") == (b"", 1000)


async def test_the_demo_app_serves_super_scaled_sockets_on_sss(aiohttp_client: Any):
    """The demo (``monument-ws run``): its handlers and the chat channel on ``/sss`` too."""
    from monument_ws.app_template.app.main import create_app

    client = await aiohttp_client(create_app())
    peer = await sss_connect(client, "/sss")
    assert (await peer.begin())["sys"] == sss.BEGIN
    assert (await peer.ask("echo", {"x": 1}))["msg"] == {"x": 1}  # a handler
    assert (await peer.ask("hello", "sss"))["msg"] == "Hello, sss!"  # a plug
    assert (await peer.subscribe("chat"))["result"] is True
    msg = {"channel": "chat", "event": "say", "data": "hi"}
    await peer.send({"sys": sss.ASK, "topic": "ws:publish", "msg": msg, "id": "p"})
    feed = await peer.until(sss.FEED)  # before or after the RESPONSE
    assert (feed["topic"], feed["msg"], feed["channel"]) == ("say", "hi", "chat")


async def test_resync_on_another_process_over_redis(make_server, redis_prefix: str):
    """The uid a client holds from one process recovers on another sharing the Redis broker."""
    settings = {"endpoints": ENDPOINTS, "broker": REDIS_URL, "broker_prefix": redis_prefix}
    client_a, ws_a = await make_server(**settings)
    client_b, ws_b = await make_server(**settings)
    first = await sss_connect(client_a)
    await first.begin()
    await first.subscribe("news")
    await ws_b.publish("news", "item", "seen")
    assert (await first.until(sss.FEED))["msg"] == "seen"
    await first.ws.close()
    for n in range(2):
        await ws_a.publish("news", "item", n)
    second = await sss_connect(client_b)
    answer = await second.resync(first)
    assert answer["result"] == {"news": True}
    assert [r["msg"] for r in answer["records"]] == [0, 1]
    assert [since(r["uid"])[1] for r in answer["records"]] == [2, 3]  # type: ignore[index]


def test_a_uid_with_an_offset_past_63_bits_names_no_place() -> None:
    """A lastUid is the client's: one with thousands of digits (int() would raise on it) or
    past 63 bits is no place at all (a resync reports false for it), never an exception."""
    assert since("e1:" + "9" * 5000) is None
    assert since("e1:" + "9" * 20) is None
    assert since("e1:9223372036854775807") == ("e1", 2**63 - 1)
