"""super-scaled-sockets' wire format, so its JavaScript client can talk to a monument_ws server.

Every message is one **text** WebSocket frame: a JSON object whose ``sys`` number says what it
is (docs/protocol.md, "super-scaled-sockets"), or the bare string ``h``, the heartbeat.

**In**, by ``sys``:

* BEGIN ``{sys: 3}`` is answered here (a :class:`~.base.Reply`), from the welcome the core sent
  this socket: ``{sys: 3, prot, channel?, lastUid?}``. ``prot`` is ``{hb: true, hbInterval}``
  (milliseconds, the ``heartbeat`` setting) or ``{}`` when it is 0; ``channel`` and ``lastUid``
  name the socket's ``$user:`` channel, when the session parser gave it a user.
* SUBSCRIBE ``{sys: 1, channel, query, id}`` is ``ws:subscribe {channel, query}``, so the
  namespace's policy and subscription parser see ``query``; UNSUBSCRIBE ``{sys: 2, channel}``
  is ``ws:unsubscribe``.
* SYNC ``{sys: 4, subscriptions: [{channel, lastUid, query}]}`` (a reconnected client) is one
  ``ws:subscribe`` per channel, with ``since`` from ``lastUid``: the missed publications come
  as FEED frames, then one SYNC answer ``{sys: 4, result: {channel: bool}, records: []}`` once
  every subscribe is answered (the client queues the FEEDs until it has it). A channel's
  result is whether it was recovered.
* ASK ``{sys: 5, topic, msg, id}`` is the request ``{event: topic, data: msg}``; TELL
  ``{sys: 6, topic, msg}`` the same without an id (no answer).
* ``h`` is the client's answer to the server's heartbeat: taken, not answered (answering it
  would start an endless exchange: the client answers every ``h`` it gets).

Request ids are made up here, so a client's ``id`` may be any string up to 64 characters or
any integer; it is only echoed. A binary frame closes the socket with 1003. Anything else
that is not such an object (not JSON, a ``sys`` the client does not send, a missing field, a
field of the wrong type) is refused as ``bad_frame`` (``max_bad_frames`` in a row close with
1008), sent as the format's error ``{err: {name, code, message}}`` with no ``sys``: the
client hands it to its ``onError``. A subscribe to a name that is not a channel name is
answered ``{sys: 1, result: false, …, err}`` without reaching the core.

**Out**, per native frame:

* a reply to an ask: RESPONSE ``{sys: 7, id, msg}`` (a stream: its first chunk, or null when
  it ends with none; the format has one answer per ask); an error: RESPONSE with ``err``,
  ``{name: "Super Scaled Sockets Error", message: "Unknown request topic sent from client"}``
  for ``not_found``, else ``{name, code, message}``;
* the reply to a subscribe: ``{sys: 1, result: true, channel, id, lastUid}``; its error:
  ``result: false`` with ``err``; an unsubscribe's reply is not sent (the format has none);
* an ask of ``ws:publish`` with ``"exclude_sender": true`` (the publisher leaving itself out,
  as super-scaled-sockets' ``socket.publish`` does) is also answered with UPDATESUB
  ``{sys: 12, channel, uid}`` before its RESPONSE, so the client's ``lastUid`` moves past the
  publication it did not get;
* a channel publication: FEED ``{sys: 8, topic, msg, channel, uid}``; a broadcast: BROADCAST
  ``{sys: 11, topic, msg}``; a push naming a channel without an offset (``ws:join``,
  ``ws:leave``, ``ws:member``, ``ws:knock``) and any other push: TELL ``{sys: 6, topic, msg}``
  (``msg`` ``{channel, data}`` for the former);
* an error about no request (a bad frame): ``{err: {name, code, message}}``;
* the welcome (kept for BEGIN): not sent; a server call never reaches the codec (the format
  has no call, so ``socket.call`` raises NotFound at once).

**uid.** A publication's place is ``(epoch, offset)`` natively; its uid here is the string
``"<epoch>:<offset>"``, and a SYNC's ``lastUid`` is read back into ``since``. A publication is
encoded once for all the codec's sockets, so the epoch comes from the codec: it remembers each
channel's epoch from the subscribe replies and welcomes its sockets got (at most
:data:`MAX_EPOCHS` channels, the oldest forgotten first). A channel it has forgotten gets the
uid ``"<offset>"``, which a SYNC cannot recover from: that channel's result is false. A
recovery's replay is this socket's alone and comes before the subscribe reply (on a process
that may not know the channel yet): its uids take the epoch the SYNC asked for, which is the
channel's whenever there is a replay.

**Close.** A kick (4409) sends BOOT ``{sys: 9, reason}`` and closes with 4001, the code the
client reads as booted (it does not reconnect); other closes keep their code. With
:attr:`heartbeat` the server sends ``h`` every ``heartbeat`` seconds, as the client expects.

Memory per socket is bounded: at most :data:`MAX_PENDING` requests are remembered, each
holding at most a 64-character id and a 200-character channel, and as many epochs asked for by
SYNCs in flight; the oldest is forgotten first
(its answer is then not sent: the client's callback stays pending, as with no answer).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

import orjson

from ..frames import ERROR_EVENT, WELCOME_EVENT, CloseCode, ErrorCode, Invalid, check_channel
from ..writer import text_frame
from .base import Codec, CodecSession, Decoded, Reply

SUBSCRIBE: Final = 1
UNSUBSCRIBE: Final = 2
BEGIN: Final = 3
SYNC: Final = 4
ASK: Final = 5
TELL: Final = 6
RESPONSE: Final = 7
FEED: Final = 8
BOOT: Final = 9
BROADCAST: Final = 11
UPDATESUB: Final = 12

#: the name of every error object this format sends
ERROR_NAME: Final = "Super Scaled Sockets Error"
#: the message of an ask whose topic nobody answers (super-scaled-sockets' own words)
UNKNOWN_TOPIC: Final = "Unknown request topic sent from client"
#: the close code the client reads as "booted": it does not reconnect
BOOTED: Final = 4001
#: requests remembered per socket for routing answers back (the oldest is forgotten first)
MAX_PENDING: Final = 1024
#: channels whose epoch the codec remembers for FEED uids (the oldest is forgotten first)
MAX_EPOCHS: Final = 65_536
#: the longest client request id taken
MAX_ID: Final = 64

_HEARTBEAT: Final = b"h"
_BINARY = Invalid(
    ErrorCode.BAD_FRAME,
    "binary frames are not supported on this endpoint; send super-scaled-sockets JSON text",
    close=CloseCode.UNSUPPORTED_DATA,
)


def uid(epoch: str | None, offset: int) -> str:
    """A publication's uid: ``"<epoch>:<offset>"`` (``"<offset>"`` with no epoch known)."""
    return f"{offset}" if epoch is None else f"{epoch}:{offset}"


def since(last_uid: Any) -> tuple[str, int] | None:
    """The ``(epoch, offset)`` a uid names; None for anything that is not such a uid."""
    if not isinstance(last_uid, str):
        return None
    epoch, colon, offset = last_uid.rpartition(":")
    # 19 digits at most: an offset fits 63 bits, and int() of a very long digit string raises
    if not colon or not epoch or not offset.isascii() or not offset.isdigit() or len(offset) > 19:
        return None
    return epoch, int(offset)


def _wire(obj: dict[str, Any]) -> bytes:
    return text_frame(orjson.dumps(obj))


def _error(code: Any, message: Any) -> dict[str, Any]:
    if code == ErrorCode.NOT_FOUND:
        return {"name": ERROR_NAME, "message": UNKNOWN_TOPIC}
    return {"name": ERROR_NAME, "code": code, "message": message}


def _native(frame: bytes) -> dict[str, Any] | None:
    """A native frame as an object; None for what is not one (an outgoing hook's odd rewrite)."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("event"), str) else None


class SuperScaledSockets(Codec):
    """The super-scaled-sockets format; it remembers channels' epochs for FEED uids."""

    name = "super-scaled-sockets"
    sync_patches = False
    server_calls = False
    heartbeat = text_frame(_HEARTBEAT)

    def __init__(self) -> None:
        self._epochs: OrderedDict[str, str] = OrderedDict()

    def session(self) -> Session:
        return Session(self)

    def epoch(self, channel: str) -> str | None:
        """The epoch last seen for ``channel`` by any socket of this codec (None: unknown)."""
        return self._epochs.get(channel)

    def learn(self, channel: Any, epoch: Any) -> None:
        """Remember ``channel``'s epoch from a subscribe reply or a welcome."""
        if not isinstance(channel, str) or not isinstance(epoch, str):
            return
        epochs = self._epochs
        epochs[channel] = epoch
        epochs.move_to_end(channel)
        while len(epochs) > MAX_EPOCHS:
            epochs.popitem(last=False)

    def encode_shared(self, frame: bytes) -> bytes:
        obj = _native(frame)
        if obj is None:
            return b""
        channel = obj.get("channel")
        offset = obj.get("offset")
        if isinstance(channel, str) and isinstance(offset, int):
            return _feed(obj, channel, uid(self.epoch(channel), offset))
        if "channel" in obj:  # join/leave, member, knock: no place in history
            msg = {"channel": channel, "data": obj.get("data")}
            return _wire({"sys": TELL, "topic": obj["event"], "msg": msg})
        return _wire({"sys": BROADCAST, "topic": obj["event"], "msg": obj.get("data")})


class _Resync:
    """One SYNC of the client: the result per channel, and how many subscribes are unanswered."""

    __slots__ = ("left", "result")

    def __init__(self) -> None:
        self.result: dict[str, bool] = {}
        self.left = 0


class _Pending:
    """A request of this socket: what it was, the client's id, its channel."""

    __slots__ = ("channel", "client_id", "kind", "resync", "synced")

    def __init__(
        self,
        kind: int,
        client_id: Any = None,
        channel: str | None = None,
        resync: _Resync | None = None,
        synced: bool | None = None,
    ) -> None:
        self.kind = kind
        self.client_id = client_id
        self.channel = channel
        self.resync = resync
        #: a SYNC's subscribe: its result whatever the reply (None: the reply's ``recovered``)
        self.synced = synced


class Session(CodecSession):
    """One socket's super-scaled-sockets state: its welcome and its open requests."""

    __slots__ = ("_asked", "_begin", "_codec", "_next_id", "_pending")

    def __init__(self, codec: SuperScaledSockets) -> None:
        self._codec = codec
        self._next_id = 0
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        #: channel -> the epoch a SYNC asked to recover from (what its replay belongs to)
        self._asked: dict[str, str] = {}
        #: the answer to BEGIN, made from the welcome (the only part of it kept)
        self._begin = _begun({})

    @property
    def codec(self) -> SuperScaledSockets:
        return self._codec

    @property
    def pending(self) -> int:
        """Requests remembered now (never more than :data:`MAX_PENDING`)."""
        return len(self._pending)

    # --- in ---------------------------------------------------------------------

    def decode(self, data: bytes, binary: bool) -> Decoded:
        if binary:
            return (_BINARY,)
        if data == _HEARTBEAT:
            return ()
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return (_bad("not JSON: send a JSON object with a 'sys' code, or 'h'"),)
        if not isinstance(obj, dict):
            return (_bad("a message is a JSON object with a 'sys' code"),)
        kind = obj.get("sys")
        if type(kind) is not int:  # not true (== 1) nor 3.0 (== 3)
            return (_bad(f"unknown sys code {kind!r}: a client sends 1 to 6"),)
        if kind == BEGIN:
            return (Reply(self._begin),)
        if kind == SUBSCRIBE:
            return self._subscribe(obj)
        if kind == UNSUBSCRIBE:
            return self._unsubscribe(obj)
        if kind == SYNC:
            return self._resync(obj)
        if kind in (ASK, TELL):
            return self._ask(obj, kind)
        return (_bad(f"unknown sys code {kind!r}: a client sends 1 to 6"),)

    def _subscribe(self, obj: dict[str, Any]) -> Decoded:
        client_id = obj.get("id")
        if not _an_id(client_id):
            return (_bad(f"a subscribe needs an 'id': a string of 1 to {MAX_ID} or an integer"),)
        channel = obj.get("channel")
        problem = check_channel(channel)
        if problem is not None:
            answer = {"sys": SUBSCRIBE, "result": False, "id": client_id}
            answer["err"] = _error(ErrorCode.BAD_FRAME, problem)
            return (Reply(_wire(answer)),)
        assert isinstance(channel, str)
        data: dict[str, Any] = {"channel": channel}
        if obj.get("query") is not None:
            data["query"] = obj["query"]
        return (self._request("ws:subscribe", data, _Pending(SUBSCRIBE, client_id, channel)),)

    def _unsubscribe(self, obj: dict[str, Any]) -> Decoded:
        channel = obj.get("channel")
        problem = check_channel(channel)
        if problem is not None:
            return (_bad(f"an unsubscribe needs a 'channel': {problem}"),)
        return (self._request("ws:unsubscribe", {"channel": channel}, _Pending(UNSUBSCRIBE)),)

    def _resync(self, obj: dict[str, Any]) -> Decoded:
        subscriptions = obj.get("subscriptions")
        if not isinstance(subscriptions, list) or len(subscriptions) > MAX_PENDING:
            return (_bad(f"a sync needs 'subscriptions': a list of at most {MAX_PENDING}"),)
        wanted: list[tuple[str, Any, Any]] = []
        for item in subscriptions:
            channel = item.get("channel") if isinstance(item, dict) else None
            if check_channel(channel) is not None:
                return (_bad("each subscription is {'channel': <name>, 'lastUid', 'query'}"),)
            assert isinstance(channel, str)
            wanted.append((channel, item.get("lastUid"), item.get("query")))
        resync = _Resync()
        if not wanted:
            return (Reply(_wire({"sys": SYNC, "result": {}, "records": []})),)
        out: list[bytes | Invalid | Reply] = []
        for channel, last_uid, query in wanted:
            data: dict[str, Any] = {"channel": channel}
            if query is not None:
                data["query"] = query
            position = since(last_uid)
            if position is not None:
                data["since"] = {"epoch": position[0], "offset": position[1]}
                self._asked.pop(channel, None)  # the newest last: the oldest is dropped first
                self._asked[channel] = position[0]
                if len(self._asked) > MAX_PENDING:
                    del self._asked[next(iter(self._asked))]
            # no lastUid: nothing to recover; one that names no place proves nothing
            synced = None if position is not None else last_uid is None
            resync.left += 1
            pending = _Pending(SYNC, None, channel, resync, synced)
            out.append(self._request("ws:subscribe", data, pending))
        return out

    def _ask(self, obj: dict[str, Any], kind: int) -> Decoded:
        topic = obj.get("topic")
        if not isinstance(topic, str) or not topic:
            return (_bad("an ask or a tell needs a 'topic': a non-empty string"),)
        if kind == TELL:
            return (orjson.dumps({"event": topic, "data": obj.get("msg")}),)
        client_id = obj.get("id")
        if not _an_id(client_id):
            return (_bad(f"an ask needs an 'id': a string of 1 to {MAX_ID} or an integer"),)
        msg = obj.get("msg")
        channel = None
        if topic == "ws:publish" and isinstance(msg, dict) and msg.get("exclude_sender") is True:
            channel = msg.get("channel") if check_channel(msg.get("channel")) is None else None
        return (self._request(topic, msg, _Pending(ASK, client_id, channel)),)

    def _request(self, event: str, data: Any, pending: _Pending) -> bytes:
        self._next_id += 1
        request_id = self._next_id
        self._pending[request_id] = pending
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        return orjson.dumps({"event": event, "id": request_id, "data": data})

    # --- out --------------------------------------------------------------------

    def encode(self, frame: bytes) -> bytes:
        obj = _native(frame)
        if obj is None:
            return b""
        event: str = obj["event"]
        if event == WELCOME_EVENT:
            welcome = obj.get("data")
            welcome = welcome if isinstance(welcome, dict) else {}
            self._begin = _begun(welcome)
            user = (welcome.get("channels") or {}).get("user")
            if isinstance(user, dict):
                self._codec.learn(user.get("channel"), user.get("epoch"))
            return b""
        if "call" in obj:
            return b""
        request_id = obj.get("id")
        if request_id is None:
            if event == ERROR_EVENT:
                error = obj.get("error") or {}
                return _wire({"err": _error(error.get("code"), error.get("message"))})
            if "channel" in obj:  # a publication sent to this socket alone (a replay)
                return self._replayed(obj, frame)
            return _wire({"sys": TELL, "topic": event, "msg": obj.get("data")})
        pending = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
        if pending is None:  # a later chunk of an answered stream, or a forgotten request
            return b""
        error = obj.get("error") if event == ERROR_EVENT else None
        if pending.kind == ASK:
            return self._response(pending, obj, error)
        if pending.kind == SUBSCRIBE:
            return self._subscribed(pending, obj.get("data"), error)
        if pending.kind == SYNC:
            return self._synced(pending, obj.get("data"), error)
        if error is not None:  # an unsubscribe's error; its reply has no frame in the format
            return _wire({"err": _error(error.get("code"), error.get("message"))})
        return b""

    def _replayed(self, obj: dict[str, Any], frame: bytes) -> bytes:
        """A recovery's replay comes before the subscribe reply that would teach the codec the
        channel's epoch (on a process that had not seen the channel yet): a replay only happens
        when the epoch the SYNC asked for is the channel's, so the uid takes that one."""
        channel, offset = obj["channel"], obj.get("offset")
        epoch = self._asked.get(channel) if isinstance(channel, str) else None
        if epoch is None or not isinstance(offset, int):
            return self._codec.encode_shared(frame)
        return _feed(obj, channel, uid(epoch, offset))

    def _response(self, pending: _Pending, obj: dict[str, Any], error: Any) -> bytes:
        answer: dict[str, Any] = {"sys": RESPONSE, "id": pending.client_id}
        if error is not None:
            answer["err"] = _error(error.get("code"), error.get("message"))
            return _wire(answer)
        data = obj.get("data")
        answer["msg"] = data
        out = _wire(answer)
        channel = pending.channel  # a ws:publish leaving its sender out: where its uid went
        if channel is not None and isinstance(data, dict) and isinstance(data.get("offset"), int):
            position = uid(self._codec.epoch(channel), data["offset"])
            out = _wire({"sys": UPDATESUB, "channel": channel, "uid": position}) + out
        return out

    def _subscribed(self, pending: _Pending, data: Any, error: Any) -> bytes:
        answer: dict[str, Any] = {
            "sys": SUBSCRIBE,
            "result": error is None,
            "channel": pending.channel,
            "id": pending.client_id,
        }
        if error is not None:
            answer["err"] = _error(error.get("code"), error.get("message"))
        elif isinstance(data, dict):
            self._codec.learn(pending.channel, data.get("epoch"))
            answer["lastUid"] = uid(data.get("epoch"), data.get("offset", 0))
        return _wire(answer)

    def _synced(self, pending: _Pending, data: Any, error: Any) -> bytes:
        resync = pending.resync
        assert resync is not None
        assert pending.channel is not None
        self._asked.pop(pending.channel, None)
        ok = False
        if error is None and isinstance(data, dict):
            self._codec.learn(pending.channel, data.get("epoch"))
            ok = data.get("recovered") is True if pending.synced is None else pending.synced
        resync.result[pending.channel] = ok
        resync.left -= 1
        if resync.left:
            return b""
        return _wire({"sys": SYNC, "result": resync.result, "records": []})

    # --- close ------------------------------------------------------------------

    def closing(self, code: int, reason: str) -> tuple[bytes, int]:
        if code == CloseCode.KICKED:
            return _wire({"sys": BOOT, "reason": reason}), BOOTED
        return b"", code


def _feed(obj: dict[str, Any], channel: str, position: str) -> bytes:
    topic, msg = obj["event"], obj.get("data")
    return _wire({"sys": FEED, "topic": topic, "msg": msg, "channel": channel, "uid": position})


def _begun(welcome: dict[str, Any]) -> bytes:
    """The answer to BEGIN from a socket's welcome: its heartbeat and its user channel."""
    period = welcome.get("heartbeat")
    prot: dict[str, Any] = {}
    if isinstance(period, int | float) and period > 0:
        prot = {"hb": True, "hbInterval": int(period * 1000)}
    answer: dict[str, Any] = {"sys": BEGIN, "prot": prot}
    user = (welcome.get("channels") or {}).get("user")
    if isinstance(user, dict):
        answer["channel"] = user.get("channel")
        answer["lastUid"] = uid(user.get("epoch"), user.get("offset", 0))
    return _wire(answer)


def _an_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and 0 < len(value) <= MAX_ID)


def _bad(message: str) -> Invalid:
    return Invalid(ErrorCode.BAD_FRAME, message)
