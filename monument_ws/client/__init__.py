"""The Python client: calls, tells, streams, server calls, and a connection that heals itself.

::

    from monument_ws.client import Client

    async with Client("ws://127.0.0.1:8080/ws") as c:
        print(await c.call("data:get:greeting"))
        c.tell("chat", {"text": "hi"})                 # no reply expected
        async for n in c.stream("countdown", 3):       # a streamed reply
            print(n)
        c.on("news", print)                            # pushes
        c.perform("confirm", lambda data: True)        # answer server calls

It imports only the protocol and sync modules, the error tree and aiohttp's client.

**SYNC.** Frames carrying ``"sync": "full" | "patch"`` are applied to the
current object kept per event; listeners, calls and streams receive the whole
current object, never the patch, and :meth:`Client.synced` returns it. The
object is shared with listeners: treat it as read-only. A patch that does not
apply (it cannot happen with a conforming server) is logged, the event's object
is forgotten and ``ws:error`` is emitted; the next ``full`` frame re-syncs.

**Reconnection.** When the connection drops the client reconnects by itself
with exponential backoff and full jitter (``random() * min(backoff_max,
backoff_initial * 2**attempt)``), presenting its ``resume`` secret so it keeps
its ``client_id``. It obeys the close-code table of the protocol: after 1000,
1007, 1008, 4401, 4403 and 4409 it does not reconnect; after 4029 it waits at least
``long_delay`` seconds. Lifecycle events, observed with ``on()``, use the
reserved ``ws:`` prefix so they never collide with application events:
``ws:connect`` (first welcome), ``ws:reconnect``, ``ws:offline`` (dropped,
will retry), ``ws:close`` (final, with ``code`` and ``reason``, also after
:meth:`Client.close`) and ``ws:error`` (an error frame without an ``id``). A
late answer to a call that timed out or a stream left early is dropped.

**Several servers.** ``Client([url_a, url_b])`` is given every process (or
every load balancer) it may use: it connects to the first and, each time the
connection drops or an attempt fails, tries the next one in turn. A process
that shuts down gracefully closes its sockets with 1001 in batches; its
clients reconnect after a short jitter to the next URL, resume their
``client_id`` (when the processes share ``secret``) and resubscribe with
``since``, so the channel history on a shared broker fills the gap.

**Offline queue.** Every outgoing frame goes through one ordered queue of at
most ``queue_limit`` frames. While disconnected, tells and calls wait there
(calls within their own timeout) and are sent in order after reconnecting.
When the queue is full, ``tell`` and ``call`` raise :class:`QueueFull` at
once; nothing already queued is dropped. A call that was sent but not answered
when the connection dropped fails with :class:`ConnectionLost`, unless it was
made with ``retry=True``: then it is sent again after reconnecting (so the
server may run it twice).

**Frame middleware and the peer queue.** ``outgoing(hook)`` and ``incoming(hook)``
see every frame (see their docstrings for what a refusal does); ``listen(fn)``
sees every frame first. ``enqueue(data)`` stores a message for the server's
``socket.consume()``; messages the server queued for this client wait in a
local queue (bounded by ``queue_size`` and ``queue_ttl``) for ``consume()``,
and after a reconnect the client presents the highest ``seq`` it has
(``queued=``), so each reaches the queue at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import ssl as ssl_module
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import orjson

from .. import protocol
from ..protocol import backoff
from ..protocol import patches as sync
from ..protocol.errors import (
    ConnectionLost,
    InternalError,
    MonumentWSError,
    NotFound,
    QueueFull,
    Timeout,
    TooLarge,
    Unavailable,
    from_error_frame,
)
from ..protocol.frames import CloseCode, Kind, Queued, Reconnect

log = logging.getLogger("monument_ws.client")

Listener = Callable[[Any], Any]
#: A frame middleware hook: sees the decoded frame, returns a replacement or None (keep it).
FrameHook = Callable[[dict[str, Any]], "dict[str, Any] | None"]
_DEFAULT: Any = object()


class _Call:
    """A request with an id waiting for its answer (or, for a stream, its chunks)."""

    __slots__ = ("chunks", "frame", "future", "retry", "sent")

    def __init__(self, frame: bytes, retry: bool, stream: bool) -> None:
        self.frame = frame
        self.retry = retry
        self.sent = False
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.chunks: asyncio.Queue[tuple[str, Any]] | None = asyncio.Queue() if stream else None

    def fail(self, error: MonumentWSError) -> None:
        if self.chunks is not None:
            self.chunks.put_nowait(("error", error))
        if not self.future.done():
            self.future.set_exception(error)
            self.future.exception()  # mark retrieved: the caller may be gone


@dataclass(frozen=True, slots=True)
class Message:
    """One channel publication as a subscriber receives it."""

    channel: str
    event: str
    data: Any
    offset: int


class Subscription:
    """A channel this client is subscribed to; survives reconnects.

    ``offset`` is the newest publication received, ``epoch`` the history it
    belongs to; after a reconnect the client resubscribes with ``since`` and
    ``recovered`` tells whether every missed publication was replayed (False:
    some were lost; reload the state from elsewhere). Publications at or below
    ``offset`` are dropped as duplicates.
    """

    def __init__(
        self, client: Client, channel: str, handler: Callable[[Message], Any], query: Any
    ) -> None:
        self.client = client
        self.channel = channel
        self.handler = handler
        self.query = query
        self.offset = 0
        self.epoch: str | None = None
        self.recovered: bool | None = None
        self.active = True

    async def unsubscribe(self) -> None:
        await self.client.unsubscribe(self.channel)

    def __repr__(self) -> str:
        return f"<Subscription {self.channel} offset={self.offset} recovered={self.recovered}>"


class Periodic:
    """A running :meth:`Client.every`; ``cancel()`` stops it (closing the client does too)."""

    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    def cancel(self) -> None:
        self._task.cancel()

    @property
    def cancelled(self) -> bool:
        return self._task.done()


class Client:
    """A monument_ws connection that reconnects, resumes and queues by itself."""

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        reconnect: bool = True,
        backoff_initial: float = 0.25,
        backoff_max: float = 30.0,
        long_delay: float = 15.0,
        queue_limit: int = 1000,
        call_timeout: float = 60.0,
        heartbeat: bool = True,
        headers: dict[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        ssl: ssl_module.SSLContext | bool = True,
        queue_size: int = 100,
        queue_ttl: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = random.random,
    ) -> None:
        #: Every server URL this client may use; ``url`` is the one in use (or tried) now.
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("Client needs at least one URL")
        self._url_index = 0
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.long_delay = long_delay
        self.queue_limit = queue_limit
        self.call_timeout = call_timeout
        self.heartbeat = heartbeat
        self.headers = headers or {}
        #: for wss://: True verifies against the system CAs, an SSLContext against its own
        #: (e.g. a private CA); False skips verification (never in production)
        self.ssl = ssl
        #: peer queue bounds: messages kept, and seconds each waits for consume()
        self.queue_size = queue_size
        self.queue_ttl = queue_ttl
        #: queued messages dropped by those bounds before they were consumed
        self.queue_dropped = 0
        self._clock = clock
        self._inbox: deque[tuple[Queued, float]] = deque()
        self._queue_last = 0  # the highest seq received: the server never sends it again
        self._session = session
        self._own_session = session is None
        self._sleep = sleep
        self._random = random

        self.client_id: str | None = None
        self.resume: str | None = None
        self.welcome: dict[str, Any] = {}
        self.state = "idle"  # idle → connecting → open ⇄ reconnecting → closed
        self.close_code: int | None = None
        self.close_reason = ""

        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 1
        self._calls: dict[int, _Call] = {}
        self._outbox: deque[tuple[bytes, _Call | None]] = deque()
        self._wake = asyncio.Event()  # set when the outbox gets a frame
        self._listeners: dict[str, list[Listener]] = {}
        self._performers: dict[str, Callable[[Any], Any]] = {}
        self._raw: list[Callable[[Any], Any]] = []
        self._incoming: list[FrameHook] = []
        self._outgoing: list[FrameHook] = []
        #: incoming frames refused by a hook
        self.refused = 0
        self._subscriptions: dict[str, Subscription] = {}
        self._synced: dict[str, Any] = {}  # event -> current SYNC object
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._closing = False

    # --- lifecycle ----------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, timeout: float = 30.0) -> None:
        """Open the connection and wait for the server's welcome.

        Raises :class:`ConnectionLost` if the first connection fails (after
        retrying with backoff for up to ``timeout`` seconds when reconnect is on).
        """
        if self._runner is not None:
            raise RuntimeError(
                "Client.connect() was already called; create a new Client to reconnect"
            )
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._first = asyncio.get_running_loop().create_future()
        self._runner = asyncio.get_running_loop().create_task(self._run())
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._first)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close for good (code 1000): no reconnect; waiting calls fail with ConnectionLost."""
        self._closing = True
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._finish(CloseCode.NORMAL, "closed by the client"):
            await self._emit("ws:close", {"code": self.close_code, "reason": self.close_reason})
        if self._own_session and self._session is not None:
            await self._session.close()

    @property
    def url(self) -> str:
        """The server URL in use (or being tried) now."""
        return self.urls[self._url_index]

    @property
    def connected(self) -> bool:
        return self.state == "open"

    def synced(self, event: str, default: Any = None) -> Any:
        """The current object of a SYNC ``event`` (``default`` before its first frame)."""
        return self._synced.get(event, default)

    @property
    def queued(self) -> int:
        """Frames waiting in the offline queue."""
        return len(self._outbox)

    # --- requests -----------------------------------------------------------

    async def call(
        self,
        event: str,
        data: Any = None,
        *,
        timeout: float | None = _DEFAULT,
        retry: bool = False,
    ) -> Any:
        """Send a request and return its reply's data.

        Raises the typed error the server answered with (NotFound, Forbidden,
        Timeout …, each with ``.code`` and ``remote = True``), :class:`Timeout`
        when no answer comes within ``timeout`` (default ``call_timeout``;
        None or 0: wait forever; the server is told to cancel), or
        :class:`ConnectionLost` (see ``retry`` in the module documentation).
        """
        request_id, call = self._request(event, data, retry=retry, stream=False)
        timeout = self.call_timeout if timeout is _DEFAULT else timeout
        try:
            async with asyncio.timeout(timeout or None):
                return await call.future
        except TimeoutError:
            self._cancel_remote(request_id, call)
            raise Timeout(f"no answer to {event!r} within {timeout:g} s") from None
        finally:
            self._forget(request_id, call)

    def tell(self, event: str, data: Any = None) -> None:
        """Send without expecting a reply (queued while offline). Raises QueueFull or TooLarge."""
        self._enqueue(protocol.push(event, data), None)

    async def stream(self, event: str, data: Any = None) -> AsyncIterator[Any]:
        """Iterate over a streamed reply's chunks; leaving the loop early cancels it on the server.

        A plain (non-streamed) reply is yielded as the only item.
        """
        request_id, call = self._request(event, data, retry=False, stream=True)
        assert call.chunks is not None
        finished = False
        try:
            while True:
                kind, value = await call.chunks.get()
                if kind == "chunk":
                    yield value
                elif kind == "end":
                    finished = True
                    return
                elif kind == "reply":
                    finished = True
                    yield value
                    return
                else:
                    finished = True
                    raise value
        finally:
            if not finished:
                self._cancel_remote(request_id, call)
            self._forget(request_id, call)

    # --- peer queue ---------------------------------------------------------

    async def enqueue(self, data: Any = None, *, timeout: float | None = _DEFAULT) -> int:
        """Queue ``data`` for the server (``socket.consume()`` takes it); returns its seq.

        When it returns, the message is stored in the server's broker for
        ``queue_ttl`` seconds, reachable from any process. Raises like :meth:`call`.
        """
        reply = await self.call(protocol.QUEUE_EVENT, data, timeout=timeout)
        return int(reply["seq"])

    def consume(self, accept: Callable[[Any], bool] | None = None) -> Queued | None:
        """Take the oldest message the server queued for this client that ``accept`` accepts
        (None: any); None when there is none. Messages queued while this client was away
        arrive after it reconnects, to any process of the same server."""
        self._expire_queued()
        for entry in self._inbox:
            if accept is None or accept(entry[0].data):
                self._inbox.remove(entry)
                return entry[0]
        return None

    @property
    def enqueued(self) -> int:
        """How many queued messages wait for :meth:`consume`."""
        self._expire_queued()
        return len(self._inbox)

    def _queued(self, frame: dict[str, Any]) -> None:
        seq = frame["seq"]
        if seq <= self._queue_last:
            return  # already received (sent again after a reconnect)
        self._queue_last = seq
        self._inbox.append((Queued(frame.get("data"), seq), self._clock() + self.queue_ttl))
        while len(self._inbox) > self.queue_size:
            self._inbox.popleft()
            self.queue_dropped += 1

    def _expire_queued(self) -> None:
        now = self._clock()
        while self._inbox and self._inbox[0][1] < now:
            self._inbox.popleft()
            self.queue_dropped += 1

    # --- channels -----------------------------------------------------------

    async def subscribe(
        self, channel: str, handler: Callable[[Message], Any], *, query: Any = None
    ) -> Subscription:
        """Subscribe to ``channel``; ``handler(Message)`` gets each publication, in offset order.

        After every reconnect the client resubscribes by itself with ``since``,
        so missed publications are replayed (see :class:`Subscription`).
        Raises the server's error (e.g. Forbidden) if the subscription is refused.
        """
        if channel in self._subscriptions:
            raise ValueError(f"already subscribed to {channel!r}; unsubscribe first")
        subscription = Subscription(self, channel, handler, query)
        self._subscriptions[channel] = subscription
        try:
            await self._join(subscription)
        except BaseException:
            self._subscriptions.pop(channel, None)
            raise
        return subscription

    async def unsubscribe(self, channel: str) -> None:
        subscription = self._subscriptions.pop(channel, None)
        if subscription is not None:
            subscription.active = False
            await self.call("ws:unsubscribe", {"channel": channel})

    async def publish(self, channel: str, event: str, data: Any = None) -> int:
        """Publish to ``channel`` (where its namespace lets clients); returns the offset."""
        reply = await self.call("ws:publish", {"channel": channel, "event": event, "data": data})
        return int(reply["offset"])

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return dict(self._subscriptions)

    async def _join(self, subscription: Subscription) -> None:
        request: dict[str, Any] = {"channel": subscription.channel}
        if subscription.query is not None:
            request["query"] = subscription.query
        if subscription.epoch is not None:
            request["since"] = {"offset": subscription.offset, "epoch": subscription.epoch}
        reply = await self.call("ws:subscribe", request)
        subscription.epoch = reply["epoch"]
        subscription.recovered = bool(reply["recovered"])
        if not subscription.recovered:
            subscription.offset = int(reply["offset"])

    async def _rejoin(self, subscription: Subscription) -> None:
        """Resubscribe after a reconnect. A transient refusal (``unavailable``, e.g. the
        server's broker is overloaded by everyone reconnecting at once, or ``timeout``) is
        retried with backoff and jitter while this connection lasts; others are reported."""
        attempt = 0
        while True:
            try:
                await self._join(subscription)
                break
            except (Unavailable, Timeout) as exc:
                if not self.connected or not subscription.active:
                    return  # the next reconnect resubscribes
                delay = backoff.delay(attempt, self.backoff_initial, self.backoff_max, self._random)
                attempt += 1
                log.info(
                    "resubscribing to %r: %s; retrying in %.2f s", subscription.channel, exc, delay
                )
                await self._sleep(delay)
            except MonumentWSError as exc:
                log.warning("resubscribing to %r failed: %s", subscription.channel, exc)
                await self._emit(
                    "ws:error",
                    {
                        "code": exc.code.value,
                        "message": exc.message,
                        "channel": subscription.channel,
                    },
                )
                return
        await self._emit(
            "ws:resubscribed",
            {"channel": subscription.channel, "recovered": subscription.recovered},
        )

    def _publication(self, frame: dict[str, Any]) -> bool:
        channel = frame.get("channel")
        subscription = self._subscriptions.get(channel) if isinstance(channel, str) else None
        offset = frame.get("offset")
        if subscription is None or not isinstance(offset, int):
            return False
        if offset > subscription.offset:
            subscription.offset = offset
            message = Message(
                subscription.channel, str(frame.get("event")), frame.get("data"), offset
            )
            self._spawn_or_run(subscription.handler, message)
        return True

    def _spawn_or_run(self, handler: Callable[[Message], Any], message: Message) -> None:
        try:
            result = handler(message)
        except Exception:
            log.exception("a subscription handler of %r failed", message.channel)
            return
        if inspect.isawaitable(result):
            self._spawn(result)

    def on(self, event: str, listener: Listener) -> Listener:
        """Call ``listener(data)`` for every push of ``event`` (or lifecycle event ``ws:…``)."""
        self._listeners.setdefault(event, []).append(listener)
        return listener

    def listen(self, listener: Callable[[Any], Any]) -> None:
        """Call ``listener(frame)`` with every frame from the server, before the hooks and
        dispatch: the decoded object, or the raw text when it is not JSON."""
        self._raw.append(listener)

    def incoming(self, hook: FrameHook) -> FrameHook:
        """Run ``hook(frame) -> dict | None`` on every frame from the server after the welcome,
        before dispatch (a dict replaces the frame). Raising a MonumentWSError refuses it:
        a server call is answered with ``ws:error`` and that code, a reply (or a stream's
        chunk) fails its call with that error, and a push is dropped (counted in
        ``refused``). Any other exception, or a return value that is neither a dict nor
        None, is logged and refuses the frame as ``internal`` (:class:`InternalError`); the
        connection and the hooks stay in place, as in monument.js."""
        self._incoming.append(hook)
        return hook

    def outgoing(self, hook: FrameHook) -> FrameHook:
        """Run ``hook(frame) -> dict | None`` on every frame before it is queued for sending
        (a dict replaces it); whatever it raises is raised by the tell/call that sent it."""
        self._outgoing.append(hook)
        return hook

    def off(self, event: str, listener: Listener) -> None:
        listeners = self._listeners.get(event, [])
        if listener in listeners:
            listeners.remove(listener)

    def perform(self, event: str, handler: Callable[[Any], Any]) -> None:
        """Answer the server's calls of ``event`` with ``handler(data)`` (sync or async).

        A MonumentWSError it raises is sent back with its code; any other
        exception as ``internal``. Calls of events nobody performs get ``not_found``.
        """
        self._performers[event] = handler

    def every(
        self,
        interval: float,
        event: str,
        data: Any = None,
        *,
        on_result: Callable[[Any], Any] | None = None,
    ) -> Periodic:
        """Tell ``event`` every ``interval`` seconds (smartersockets' setInterval).

        ``data`` may be a function, called each time for the payload. With
        ``on_result`` the request is a call and its reply is passed to it.
        Stops when cancelled or when the client closes.
        """

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                payload = data() if callable(data) else data
                if on_result is None:
                    self.tell(event, payload)
                else:
                    try:
                        result: Any = await self.call(event, payload)
                    except MonumentWSError as exc:
                        result = exc
                    await _maybe_await(on_result(result))

        return Periodic(self._spawn(loop()))

    # --- internals: outgoing ------------------------------------------------

    def _request(self, event: str, data: Any, *, retry: bool, stream: bool) -> tuple[int, _Call]:
        if self._closing or self.state == "closed":
            raise ConnectionLost("the client is closed")
        request_id = self._next_id
        self._next_id += 1
        call = _Call(
            protocol.encode({"event": event, "id": request_id, "data": data}), retry, stream
        )
        self._enqueue(call.frame, call)
        self._calls[request_id] = call
        return request_id, call

    def _forget(self, request_id: int, call: _Call) -> None:
        if self._calls.get(request_id) is call:
            del self._calls[request_id]
        if not call.sent:
            with contextlib.suppress(ValueError):
                self._outbox.remove((call.frame, call))

    def _cancel_remote(self, request_id: int, call: _Call) -> None:
        if call.sent and self.connected:
            with contextlib.suppress(MonumentWSError):
                self._enqueue(protocol.push("ws:cancel", {"id": request_id}), None)

    def _enqueue(self, frame: bytes, call: _Call | None) -> None:
        if self._outgoing:
            obj = orjson.loads(frame)
            for hook in self._outgoing:
                obj = _hooked(hook, obj)
            frame = orjson.dumps(obj)
            if call is not None:
                call.frame = frame  # a retry after a reconnect resends it as the hooks left it
        limit = self.welcome.get("max_message_size")
        if isinstance(limit, int) and len(frame) > limit:
            raise TooLarge(f"the frame has {len(frame)} bytes; the server accepts {limit}")
        if len(self._outbox) >= self.queue_limit:
            raise QueueFull(f"{self.queue_limit} frames are already waiting to be sent")
        self._outbox.append((frame, call))
        self._wake.set()

    async def _write(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send queued frames in order while this connection lives."""
        try:
            while not ws.closed:
                while self._outbox and not ws.closed:
                    frame, call = self._outbox[0]
                    await ws.send_frame(frame, aiohttp.WSMsgType.TEXT)
                    self._outbox.popleft()  # only once written: a failed send stays queued
                    if call is not None:
                        call.sent = True
                self._wake.clear()
                await self._wake.wait()
        except (aiohttp.ClientError, ConnectionError):
            return  # the reader sees the close and reconnects

    # --- internals: the connection loop -------------------------------------

    def _target(self) -> str:
        if not self.resume:
            return self.url
        parts = urlsplit(self.url)
        params: dict[str, Any] = {"resume": self.resume}
        if self._queue_last:
            params[protocol.QUEUED_PARAM] = self._queue_last
        query = "&".join(filter(None, [parts.query, urlencode(params)]))
        return urlunsplit(parts._replace(query=query))

    async def _run(self) -> None:
        attempt = 0
        opened_once = False
        while not self._closing:
            self.state = "reconnecting" if opened_once else "connecting"
            code: int | None = None
            try:
                assert self._session is not None
                async with self._session.ws_connect(
                    self._target(),
                    protocols=(protocol.SUBPROTOCOL,),
                    headers=self.headers,
                    autoping=True,
                    ssl=self.ssl,
                ) as ws:
                    self._ws = ws
                    if await self._welcomed(ws, reconnected=opened_once):
                        opened_once = True
                        attempt = 0
                        code = await self._serve(ws)
                    if code is None:
                        code = ws.close_code
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.debug("connection attempt failed: %s", exc)
                code = CloseCode.ABNORMAL
            finally:
                self._ws = None
            if self._closing:
                break
            self._dropped()
            policy = _policy(code)
            if not self.reconnect or policy is Reconnect.NEVER:
                self._finish(code, self.close_reason)
                return
            if not opened_once and self._first is not None and attempt >= 6:
                self._finish(code, "could not connect")
                return
            await self._emit("ws:offline", {"code": code, "reason": self.close_reason})
            delay = backoff.delay(attempt, self.backoff_initial, self.backoff_max, self._random)
            if policy is Reconnect.LONG_DELAY:
                delay += self.long_delay
            attempt += 1
            self._url_index = (self._url_index + 1) % len(self.urls)
            await self._sleep(delay)

    async def _welcomed(self, ws: aiohttp.ClientWebSocketResponse, *, reconnected: bool) -> bool:
        msg = await ws.receive(timeout=30)
        if msg.type is aiohttp.WSMsgType.CLOSE:  # refused at once, e.g. 4401 with the reason
            self.close_reason = msg.extra if isinstance(msg.extra, str) else ""
            return False
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return False
        parsed = protocol.parse_server(msg.data)
        if parsed is None or parsed.kind is not Kind.WELCOME:
            return False
        self._show_raw(parsed.raw)
        self.welcome = parsed.data if isinstance(parsed.data, dict) else {}
        self.client_id = self.welcome.get("client_id")
        self.resume = self.welcome.get("resume")
        self.state = "open"
        if self._first is not None and not self._first.done():
            self._first.set_result(None)
        if reconnected:
            for subscription in list(self._subscriptions.values()):
                self._spawn(self._rejoin(subscription))
        await self._emit("ws:reconnect" if reconnected else "ws:connect", self.welcome)
        return True

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> int | None:
        """Read frames until the connection ends; the code of the server's close frame, if one
        came. It is taken from the frame, not from ``ws.close_code``: aiohttp replaces that by
        1006 when our close reply cannot be written. A draining server (1001) closes its side
        right after its close frame, so a client busy in a listener just then finds its
        transport gone, and would otherwise report a lost connection."""
        writer = self._spawn(self._write(ws))
        beat = self._spawn(self._heartbeats()) if self.heartbeat else None
        try:
            while True:
                msg = await ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._on_frame(msg.data)
                elif msg.type is aiohttp.WSMsgType.CLOSE:
                    self.close_reason = msg.extra if isinstance(msg.extra, str) else ""
                    await ws.close()
                    return int(msg.data) if isinstance(msg.data, int) else None
                elif msg.type in (
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    return None
        finally:
            writer.cancel()
            if beat is not None:
                beat.cancel()

    async def _heartbeats(self) -> None:
        period = self.welcome.get("heartbeat")
        if not isinstance(period, int | float) or period <= 0:
            return
        while True:
            await asyncio.sleep(period)
            with contextlib.suppress(MonumentWSError):
                self._enqueue(protocol.push("ws:heartbeat", None), None)

    def _dropped(self) -> None:
        """The connection is gone: sent calls fail or go back in the queue, in order."""
        self.state = "reconnecting"
        retried: list[tuple[bytes, _Call]] = []
        for call in list(self._calls.values()):
            if not call.sent:
                continue
            if call.retry:
                call.sent = False
                retried.append((call.frame, call))
            else:
                call.fail(ConnectionLost("the connection dropped before the answer came"))
        self._outbox.extendleft(reversed(retried))

    def _finish(self, code: int | None, reason: str) -> bool:
        """Fail what waits and stop; False if the client had already finished."""
        if self.state == "closed":
            return False
        self.state = "closed"
        self.close_code = code
        self.close_reason = reason
        for call in list(self._calls.values()):
            call.fail(ConnectionLost(f"the connection closed ({code}: {reason})"))
        self._outbox.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._first is not None and not self._first.done():
            self._first.set_exception(ConnectionLost(f"could not connect to {self.url}"))
            self._first.exception()
        if not self._closing:  # close() emits it itself, after the tasks are gone
            self._spawn(self._emit("ws:close", {"code": code, "reason": reason}))
        return True

    # --- internals: incoming ------------------------------------------------

    async def _on_frame(self, text: str | bytes) -> None:
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            log.warning("the server sent a frame that is not JSON")
            self._show_raw(text)
            return
        self._show_raw(obj)
        if not isinstance(obj, dict):
            return
        if self._incoming:
            try:
                for hook in self._incoming:
                    obj = _hooked(hook, obj)
            except MonumentWSError as exc:
                self._refuse(obj, exc)
                return
            except Exception:
                log.exception("an incoming frame hook failed")
                self._refuse(obj, InternalError("internal error"))
                return
        parsed = protocol.classify(obj)
        if parsed is None:
            log.warning("the server sent a frame that is not a JSON object with an event")
            return
        frame, kind, event = parsed.raw, parsed.kind, parsed.event
        if parsed.sync is not None and not self._apply_sync(event, frame):
            return
        if kind is Kind.CALL:
            self._spawn(self._perform(frame))
            return
        if kind in _ANSWERS and parsed.id is not None:
            call = self._calls.get(parsed.id) if isinstance(parsed.id, int) else None
            if call is not None:
                self._settle(call, parsed)
            else:
                # A late answer (the call timed out, or its stream was left early and
                # cancelled): it answers nothing now and must not reach listeners
                # as a push or as an error about nothing.
                log.debug("dropped an answer to no waiting request: %r", frame.get("id"))
            return
        if kind is Kind.PUBLICATION:
            self._publication(frame)
        elif kind is Kind.WELCOME:
            return
        elif event == protocol.QUEUE_EVENT and isinstance(frame.get("seq"), int):
            self._queued(frame)
        elif event == "ws:knock":
            channel = frame.get("channel")
            with contextlib.suppress(MonumentWSError):
                self._enqueue(protocol.push("ws:heartbeat", {"channels": [channel]}), None)
        elif event == "ws:resubscribe":
            data = frame.get("data")
            channel = data.get("channel") if isinstance(data, dict) else None
            subscription = self._subscriptions.get(channel) if isinstance(channel, str) else None
            if subscription is not None:
                # The server lost the history between us (e.g. a broker restart):
                # offsets start again in a new epoch, so forget ours and rejoin fresh.
                subscription.offset = 0
                subscription.epoch = None
                self._spawn(self._rejoin(subscription))
        elif kind is Kind.ERROR:
            await self._emit("ws:error", frame.get("error"))
        else:
            await self._emit(event, parsed.data)

    def _refuse(self, frame: dict[str, Any], error: MonumentWSError) -> None:
        """An incoming hook refused ``frame``: answer or fail whatever waited for it."""
        self.refused += 1
        number, request_id = frame.get("call"), frame.get("id")
        call = self._calls.get(request_id) if isinstance(request_id, int) else None
        if isinstance(number, int) and frame.get("event") != protocol.ERROR_EVENT:
            with contextlib.suppress(MonumentWSError):
                self._enqueue(protocol.error(error.code, error.message, call=number), None)
        elif call is not None:
            call.fail(error)
        else:
            log.debug("an incoming hook refused %r: %s", frame.get("event"), error)

    def _apply_sync(self, event: str, frame: dict[str, Any]) -> bool:
        """Replace the frame's data by the event's object after the SYNC frame is applied."""
        try:
            current = sync.apply(self._synced.get(event), frame["sync"], frame.get("data"))
        except sync.SyncError as exc:
            log.warning("SYNC frame for %r dropped: %s", event, exc)
            self._synced.pop(event, None)
            self._spawn(self._emit("ws:error", {"code": "internal", "message": str(exc)}))
            return False
        self._synced[event] = frame["data"] = current
        return True

    def _show_raw(self, frame: Any) -> None:
        for listener in self._raw:
            try:
                listener(frame)
            except Exception:
                log.exception("a raw listener failed")

    def _settle(self, call: _Call, frame: protocol.ServerFrame) -> None:
        if frame.kind is Kind.ERROR:
            error = from_error_frame(frame.raw.get("error"))
            error.remote = True
            call.fail(error)
        elif call.chunks is not None:
            if frame.kind is Kind.CHUNK:
                call.chunks.put_nowait(("chunk", frame.data))
            elif frame.kind is Kind.END:
                call.chunks.put_nowait(("end", None))
            else:
                call.chunks.put_nowait(("reply", frame.data))
        elif not call.future.done():
            call.future.set_result(frame.data)

    async def _perform(self, frame: dict[str, Any]) -> None:
        number, event = frame.get("call"), frame.get("event")
        handler = self._performers.get(event) if isinstance(event, str) else None
        try:
            if handler is None:
                raise NotFound(f"this client performs no {event!r}")
            answer = protocol.encode(
                {
                    "event": protocol.RESULT_EVENT,
                    "call": number,
                    "data": await _maybe_await(handler(frame.get("data"))),
                }
            )
        except MonumentWSError as exc:
            answer = protocol.error(
                exc.code, exc.message, call=number if isinstance(number, int) else None
            )
        except Exception:
            log.exception("performing %r failed", event)
            answer = protocol.error(
                InternalError.code,
                "internal error",
                call=number if isinstance(number, int) else None,
            )
        with contextlib.suppress(MonumentWSError):
            self._enqueue(answer, None)

    async def _emit(self, event: str, data: Any) -> None:
        # Listeners run in order, one at a time, before the next frame is read.
        for listener in list(self._listeners.get(event, ())):
            try:
                await _maybe_await(listener(data))
            except Exception:
                log.exception("a listener of %r failed", event)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


#: Server frames that answer a request id.
_ANSWERS = frozenset({Kind.REPLY, Kind.CHUNK, Kind.END, Kind.ERROR})


def _hooked(hook: FrameHook, frame: dict[str, Any]) -> dict[str, Any]:
    result = hook(frame)
    if result is None:
        return frame
    if not isinstance(result, dict):
        raise TypeError("a frame hook must return a dict or None")
    return result


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _policy(code: int | None) -> Reconnect:
    if code is None:
        return Reconnect.BACKOFF
    try:
        return CloseCode(code).reconnect
    except ValueError:
        return Reconnect.BACKOFF
