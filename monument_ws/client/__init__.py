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

It imports only :mod:`monument_ws.protocol` (frames, errors, SYNC patches, backoff),
aiohttp's client and orjson, and logs everything as ``monument_ws.client``.
:class:`Client` is a facade over one part per job, each in its own module:
``connection`` (the reconnect loop, URL rotation, close codes), ``outbox`` (the
ordered frames not yet sent), ``calls`` (requests waiting for answers, streams),
``dispatch`` (where each incoming frame goes), ``auth`` (staged auth), ``channels`` (subscriptions and
their recovery), ``inbox`` (the peer queue), ``listeners`` (``on``, ``listen``,
frame middleware), ``performers`` (answers to server calls), ``periodic`` (``every``), ``sync``
(SYNC objects), ``status`` (state, welcome, close code) and ``tasks``; ``channel_methods`` and
``people`` hold the Client's methods about channels (subscribe, publish, history) and about
presence and the user and session channels.

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
1002, 1007, 1008, 4401, 4403 and 4409 it does not reconnect; after 4029 it waits at least
``long_delay`` seconds. Lifecycle events, observed with ``on()``, use the
reserved ``ws:`` prefix so they never collide with application events:
``ws:connect`` (first welcome), ``ws:reconnect``, ``ws:offline`` (dropped,
will retry), ``ws:close`` (final, with ``code`` and ``reason``, also after
:meth:`Client.close`), ``ws:error`` (an error frame without an ``id``) and
``ws:stage`` (the auth stage changed, see :meth:`Client.auth`). A late answer to a
call that timed out or a stream left early is dropped. ``max_retries`` bounds the
attempts in a row (then the client closes, ``ws:close`` saying how many it made);
``retry_interval`` replaces the backoff by a fixed wait.

**Several servers.** ``Client([url_a, url_b])`` is given every process (or
every load balancer) it may use: it connects to the first and, each time the
connection drops or an attempt fails, tries the next one in turn. A process
that shuts down gracefully closes its sockets with 1001 in batches; its
clients reconnect after a short jitter to the next URL, resume their
``client_id`` (when the processes share ``secret``) and resubscribe with
``since``, so the channel history on a shared broker fills the gap.

**Outbox.** Every outgoing frame goes through one ordered outbox of at most
``outbox_limit`` frames. While disconnected, tells and calls wait there
(calls within their own timeout) and are sent in order after reconnecting.
When the outbox is full, ``tell`` and ``call`` raise :class:`QueueFull` at
once; nothing already in it is dropped. A call that was sent but not answered
when the connection dropped fails with :class:`ConnectionLost`, unless it was
made with ``retry=True``: then it is sent again after reconnecting (so the
server may run it twice).

**Frame middleware and the peer queue.** ``outgoing(hook)`` and ``incoming(hook)``
see every frame (see their docstrings for what a refusal does); ``listen(fn)``
sees every frame first. ``enqueue(data)`` stores a message for the server's
``socket.consume()``; messages the server queued for this client wait in a
local inbox (bounded by ``peer_queue_size`` and ``peer_queue_ttl``) for
``consume()``, and after a reconnect the client presents the highest ``seq`` it
has (``queued=``), so each reaches the inbox at most once.

**Renamed.** The old names of the outbox and inbox bounds (``queue_limit``,
``queue_size``, ``queue_ttl``) are still accepted by the constructor, and they
and ``queued`` and ``queue_dropped`` still read (and, but for ``queued``, set)
the new attributes; each use warns with a :class:`DeprecationWarning`. They go
in 1.0.
"""

from __future__ import annotations

import asyncio
import random
import ssl as ssl_module
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar, cast, overload

import aiohttp

from .. import protocol
from ..protocol.backoff import Backoff
from ..protocol.frames import Queued
from .auth import Auth
from .calls import DEFAULT, Calls, frame_of
from .channel_methods import ChannelMethods
from .channels import Channels, Message, Subscription
from .connection import Connection
from .dispatch import Dispatch
from .inbox import Inbox
from .listeners import FrameHook, Listener, Listeners
from .outbox import Outbox
from .people import People
from .performers import Performers
from .periodic import Periodic, repeat
from .renamed import Renamed, renamed_options, warn_renamed
from .status import Status
from .sync import Synced
from .tasks import Tasks

__all__ = ["Client", "FrameHook", "Listener", "Message", "Periodic", "Queued", "Subscription"]

T = TypeVar("T")


class _Part(Generic[T]):
    """A Client attribute kept by one of its parts: reading or setting it reaches
    ``client.<part>.<name>``, so a changed option takes effect where it is used."""

    def __init__(self, part: str, name: str) -> None:
        self._part = part
        self._name = name

    @overload
    def __get__(self, client: None, owner: type[Any]) -> _Part[T]: ...

    @overload
    def __get__(self, client: Client, owner: type[Any]) -> T: ...

    def __get__(self, client: Client | None, owner: type[Any]) -> T | _Part[T]:
        if client is None:
            return self
        return cast(T, getattr(getattr(client, self._part), self._name))

    def __set__(self, client: Client, value: T) -> None:
        setattr(getattr(client, self._part), self._name, value)


class Client(ChannelMethods, People):
    """A monument_ws connection that reconnects, resumes, and keeps what it sends while offline.

    Its channel methods come from :class:`.channel_methods.ChannelMethods`, its presence and
    user/session channel methods from :class:`.people.People`."""

    #: Every server URL this client may use; ``url`` is the one in use (or tried) now.
    urls = _Part[list[str]]("_connection", "urls")
    reconnect = _Part[bool]("_connection", "reconnect")
    #: reconnect attempts in a row before the client gives up and closes (None: no limit)
    max_retries = _Part[int | None]("_connection", "max_retries")
    #: seconds every reconnect attempt waits instead of the backoff (None: the backoff)
    retry_interval = _Part[float | None]("_connection", "retry_interval")
    #: reconnect attempts since the last welcome (0 while connected)
    attempt = _Part[int]("_connection", "attempt")
    backoff_initial = _Part[float]("_backoff", "initial")
    backoff_max = _Part[float]("_backoff", "cap")
    long_delay = _Part[float]("_connection", "long_delay")
    #: frames the outbox holds at most (see ``outbox_length``)
    outbox_limit = _Part[int]("_outbox", "limit")
    call_timeout = _Part[float]("_calls", "timeout")
    heartbeat = _Part[bool]("_connection", "heartbeat")
    headers = _Part[dict[str, str]]("_connection", "headers")
    #: for wss://: True verifies against the system CAs, an SSLContext against its own
    #: (e.g. a private CA); False skips verification (never in production)
    ssl = _Part[ssl_module.SSLContext | bool]("_connection", "ssl")
    #: bounds of the inbox, where the peer queue's messages wait for consume(): messages
    #: kept, and seconds each waits
    peer_queue_size = _Part[int]("_inbox", "size")
    peer_queue_ttl = _Part[float]("_inbox", "ttl")
    #: peer-queue messages those bounds dropped before they were consumed
    peer_queue_dropped = _Part[int]("_inbox", "dropped")
    #: incoming frames refused by a hook
    refused = _Part[int]("_dispatch", "refused")
    client_id = _Part[str | None]("_status", "client_id")
    resume = _Part[str | None]("_status", "resume")
    welcome = _Part[dict[str, Any]]("_status", "welcome")
    #: idle → connecting → open ⇄ reconnecting → closed
    state = _Part[str]("_status", "state")
    close_code = _Part[int | None]("_status", "close_code")
    close_reason = _Part[str]("_status", "close_reason")

    # The old names (see "Renamed" above), removed in 1.0.
    queue_limit = Renamed[int]("outbox_limit")
    queue_size = Renamed[int]("peer_queue_size")
    queue_ttl = Renamed[float]("peer_queue_ttl")
    queue_dropped = Renamed[int]("peer_queue_dropped")

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        reconnect: bool = True,
        max_retries: int | None = None,
        retry_interval: float | None = None,
        backoff_initial: float = 0.25,
        backoff_max: float = 30.0,
        long_delay: float = 15.0,
        outbox_limit: int = 1000,
        call_timeout: float = 60.0,
        heartbeat: bool = True,
        headers: dict[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        ssl: ssl_module.SSLContext | bool = True,
        peer_queue_size: int = 100,
        peer_queue_ttl: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = random.random,
        **renamed: Any,
    ) -> None:
        """``renamed`` takes the old names of options (``queue_limit``, ``queue_size``,
        ``queue_ttl``), each with a DeprecationWarning; an old name wins over its new one."""
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("Client needs at least one URL")
        outbox_limit, peer_queue_size, peer_queue_ttl = renamed_options(
            renamed, outbox_limit, peer_queue_size, peer_queue_ttl
        )
        self._status = status = Status()
        self._tasks = tasks = Tasks()
        self._listeners = listeners = Listeners()
        self._backoff = backoff = Backoff(backoff_initial, backoff_max, random)
        self._outbox = outbox = Outbox(outbox_limit, status, listeners)
        self._calls = calls = Calls(outbox, status, call_timeout)
        self._inbox = inbox = Inbox(peer_queue_size, peer_queue_ttl, clock)
        self._synced = Synced()
        self._performers = Performers(outbox)
        self._auth = Auth(calls, listeners)
        self._channels = channels = Channels(calls, status, listeners, tasks, backoff, sleep)
        self._dispatch = dispatch = Dispatch(
            listeners, self._synced, calls, outbox, channels, inbox, self._performers, tasks
        )
        self._connection = Connection(
            urls,
            status=status,
            outbox=outbox,
            calls=calls,
            listeners=listeners,
            channels=channels,
            inbox=inbox,
            dispatch=dispatch,
            tasks=tasks,
            reconnect=reconnect,
            max_retries=max_retries,
            retry_interval=retry_interval,
            long_delay=long_delay,
            heartbeat=heartbeat,
            headers=headers or {},
            ssl=ssl,
            session=session,
            backoff=backoff,
            sleep=sleep,
        )

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
        await self._connection.open(timeout)

    async def close(self) -> None:
        """Close for good (code 1000): no reconnect; waiting calls fail with ConnectionLost."""
        await self._connection.close()

    @property
    def url(self) -> str:
        """The server URL in use (or being tried) now."""
        return self._connection.url

    @property
    def connected(self) -> bool:
        return self._status.connected

    def synced(self, event: str, default: Any = None) -> Any:
        """The current object of a SYNC ``event`` (``default`` before its first frame)."""
        return self._synced.get(event, default)

    @property
    def outbox_length(self) -> int:
        """Frames in the outbox: made but not yet written to a socket, whether the client
        is offline or the writer has not reached them yet (at most ``outbox_limit``)."""
        return len(self._outbox)

    @property
    def queued(self) -> int:
        """The old name of :attr:`outbox_length` (read-only, as it was); removed in 1.0."""
        warn_renamed("queued", "outbox_length", stacklevel=2)
        return self.outbox_length

    @property
    def _ws(self) -> aiohttp.ClientWebSocketResponse | None:
        """The socket open now, if any (tests watch its transport)."""
        return self._connection.ws

    # --- requests -----------------------------------------------------------

    async def call(
        self,
        event: str,
        data: Any = None,
        *,
        timeout: float | None = DEFAULT,
        retry: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> Any:
        """Send a request and return its reply's data.

        Raises the typed error the server answered with (NotFound, Forbidden,
        Timeout …, each with ``.code`` and ``remote = True``), :class:`Timeout`
        when no answer comes within ``timeout`` (default ``call_timeout``;
        None or 0: wait forever; the server is told to cancel), or
        :class:`ConnectionLost` (see ``retry`` in the module documentation).
        ``extra`` adds top-level keys beside ``event`` and ``data`` (as :meth:`tell`).
        """
        return await self._calls.call(event, data, timeout=timeout, retry=retry, extra=extra)

    def tell(self, event: str, data: Any = None, *, extra: dict[str, Any] | None = None) -> None:
        """Send without expecting a reply (kept in the outbox while offline).

        ``extra`` adds top-level keys beside ``event`` and ``data``, which the server hands
        to passthrough receivers in ``message``; a key the protocol reserves raises
        ValueError. Raises QueueFull (the outbox is full) or TooLarge."""
        self._outbox.put(protocol.encode(frame_of(event, data, extra)))

    def stream(self, event: str, data: Any = None) -> AsyncIterator[Any]:
        """Iterate over a streamed reply's chunks; leaving the loop early cancels it on the server.

        A plain (non-streamed) reply is yielded as the only item.
        """
        return self._calls.stream(event, data)

    # --- staged auth ---------------------------------------------------------

    async def auth(
        self,
        stage: str,
        payload: dict[str, Any] | None = None,
        *,
        timeout: float | None = DEFAULT,
    ) -> Any:
        """One stage of staged auth (``ws:auth`` with ``{"stage": stage, **payload}``): returns
        the authenticator's answer and moves :attr:`stage`. A refused stage raises
        :class:`AuthFailed` (with ``.stage``) and moves nothing; else raises like :meth:`call`.
        After a reconnect the stage is the welcome's again (see :mod:`.auth`)."""
        return await self._auth.auth(stage, payload, timeout)

    @property
    def stage(self) -> str | None:
        """The auth stage as the server last reported it (welcome or ``ws:auth``);
        ``ws:stage`` (``{stage, previous}``) is emitted when it changes."""
        return self._auth.stage

    async def unwatch(self, event: str) -> bool:
        """Stop the pushes of the live value ``event`` (``x:get:y``, asked without data) with
        ``ws:unwatch``; True if it was watched. A reconnect ends every watch: ask again."""
        return bool((await self.call("ws:unwatch", {"event": event}))["watched"])

    # --- peer queue ---------------------------------------------------------

    async def enqueue(self, data: Any = None, *, timeout: float | None = DEFAULT) -> int:
        """Queue ``data`` for the server (``socket.consume()`` takes it); returns its seq.

        When it returns, the message is stored in the server's broker for the server's
        ``peer_queue_ttl`` seconds, reachable from any process. Raises like :meth:`call`.
        """
        reply = await self.call(protocol.QUEUE_EVENT, data, timeout=timeout)
        return int(reply["seq"])

    def consume(self, accept: Callable[[Any], bool] | None = None) -> Queued | None:
        """Take the oldest message the server queued for this client that ``accept`` accepts
        (None: any); None when there is none. Messages queued while this client was away
        arrive after it reconnects, to any process of the same server."""
        return self._inbox.take(accept)

    @property
    def enqueued(self) -> int:
        """How many peer-queue messages wait in the inbox for :meth:`consume`."""
        return len(self._inbox)

    # --- listeners and middleware -------------------------------------------

    def on(self, event: str, listener: Listener) -> Listener:
        """Call ``listener(data)`` for every push of ``event`` (or lifecycle event ``ws:…``)."""
        return self._listeners.on(event, listener)

    def off(self, event: str, listener: Listener) -> None:
        self._listeners.off(event, listener)

    def listen(self, listener: Callable[[Any], Any]) -> None:
        """Call ``listener(frame)`` with every frame from the server, before the hooks and
        dispatch: the decoded object, or the raw text when it is not JSON."""
        self._listeners.listen(listener)

    def incoming(self, hook: FrameHook) -> FrameHook:
        """Run ``hook(frame) -> dict | None`` on every frame from the server after the welcome,
        before dispatch (a dict replaces the frame). Raising a MonumentWSError refuses it:
        a server call is answered with ``ws:error`` and that code, a reply (or a stream's
        chunk) fails its call with that error, and a push is dropped (counted in
        ``refused``). Any other exception, or a return value that is neither a dict nor
        None, is logged and refuses the frame as ``internal`` (:class:`InternalError`); the
        connection and the hooks stay in place, as in monument.js."""
        return self._listeners.incoming(hook)

    def outgoing(self, hook: FrameHook) -> FrameHook:
        """Run ``hook(frame) -> dict | None`` on every frame before it enters the outbox
        (a dict replaces it); whatever it raises is raised by the tell/call that sent it."""
        return self._listeners.outgoing(hook)

    def perform(self, event: str, handler: Callable[[Any], Any]) -> None:
        """Answer the server's calls of ``event`` with ``handler(data)`` (sync or async).

        A MonumentWSError it raises is sent back with its code; any other
        exception as ``internal``. Calls of events nobody performs get ``not_found``.
        """
        self._performers.add(event, handler)

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
        send = self.tell if on_result is None else self.call
        return Periodic(self._tasks.spawn(repeat(interval, event, data, send, on_result)))
