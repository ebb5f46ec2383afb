"""The connection that heals itself: connect, serve, and reconnect until closed for good.

One task runs the loop: open a socket to the current URL (presenting ``resume`` and the
peer queue's last ``seq`` once the client has them), wait for the welcome, then read
frames into the dispatcher while a writer task drains the outbox and, when the welcome
announces a period, a heartbeat task sends ``ws:heartbeat``. When the socket ends,
calls already sent fail or go back in the outbox (``retry``), and the close code decides
what comes next (:class:`~monument_ws.protocol.frames.Reconnect`): stay closed, or
wait with backoff and jitter -- or exactly ``retry_interval`` seconds when it is set --
(plus ``long_delay`` after 4029) and try the next URL in turn. ``max_retries`` attempts
in a row without a welcome close the client for good, with the last attempt's code and
the reason ``no connection after N retries``; without it a first connection that never
got a welcome gives up after 6 retries, and a later one never does.

Lifecycle events: ``ws:connect`` (the first welcome), ``ws:offline`` (dropped, will
retry), ``ws:reconnect`` (a later welcome; every subscription's resubscribe is then
under way in its own task) and ``ws:close`` (final, also after :meth:`Connection.close`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

from .. import protocol
from ..protocol.backoff import Backoff
from ..protocol.errors import ConnectionLost, MonumentWSError
from ..protocol.frames import CloseCode, Kind, Reconnect
from .calls import Calls
from .channels import Channels
from .dispatch import Dispatch
from .inbox import Inbox
from .listeners import Listeners
from .outbox import Outbox
from .status import Status
from .tasks import Tasks

# __package__, not __name__: the whole client logs as monument_ws.client.
log = logging.getLogger(__package__)

# A first connection that never opened gives up after this many retries.
_FIRST_RETRIES = 6


class Connection:
    def __init__(
        self,
        urls: list[str],
        *,
        reconnect: bool,
        max_retries: int | None,
        retry_interval: float | None,
        long_delay: float,
        heartbeat: bool,
        headers: dict[str, str],
        ssl: ssl_module.SSLContext | bool,
        session: aiohttp.ClientSession | None,
        backoff: Backoff,
        sleep: Callable[[float], Awaitable[None]],
        status: Status,
        outbox: Outbox,
        calls: Calls,
        listeners: Listeners,
        channels: Channels,
        inbox: Inbox,
        dispatch: Dispatch,
        tasks: Tasks,
    ) -> None:
        self.urls = urls
        self.reconnect = reconnect
        self.max_retries = max_retries
        self.retry_interval = retry_interval
        self.long_delay = long_delay
        self.heartbeat = heartbeat
        self.headers = headers
        self.ssl = ssl
        #: the socket open now, if any
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._url_index = 0
        self._session = session
        self._own_session = session is None
        self._backoff = backoff
        self._sleep = sleep
        self._status = status
        self._outbox = outbox
        self._calls = calls
        self._listeners = listeners
        self._channels = channels
        self._inbox = inbox
        self._dispatch = dispatch
        self._tasks = tasks
        self._runner: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None  # resolved by the first welcome
        #: why the last attempt was not a WebSocket at all (an HTTP answer), for the error
        self._refused: str | None = None
        #: reconnect attempts since the last welcome (0 while connected)
        self.attempt = 0

    @property
    def url(self) -> str:
        return self.urls[self._url_index]

    async def open(self, timeout: float) -> None:
        """Start the loop and wait for the first welcome; ConnectionLost when it never
        comes (the client is then closed)."""
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
        """Close for good with 1000; ``ws:close`` is emitted once every task is gone."""
        self._status.closing = True
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._finish(CloseCode.NORMAL, "closed by the client"):
            await self._listeners.emit(
                "ws:close", {"code": self._status.close_code, "reason": self._status.close_reason}
            )
        if self._own_session and self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        status = self._status
        self.attempt = 0
        opened_once = False
        while not status.closing:
            status.state = "reconnecting" if opened_once else "connecting"
            welcomed, code = await self._visit(reconnected=opened_once)
            if welcomed:
                opened_once, self.attempt = True, 0
            if status.closing:
                break
            policy = _policy(code)
            self._dropped(policy)
            if not self.reconnect or policy is Reconnect.NEVER:
                self._finish(code, status.close_reason)
                return
            limit = self.max_retries
            if limit is None and not opened_once:
                limit = _FIRST_RETRIES
            if limit is not None and self.attempt >= limit:
                self._finish(code, f"no connection after {self.attempt} retries")
                return
            await self._listeners.emit("ws:offline", {"code": code, "reason": status.close_reason})
            delay = self.retry_interval
            if delay is None:
                delay = self._backoff.delay(self.attempt)
            if policy is Reconnect.LONG_DELAY:
                delay += self.long_delay
            self.attempt += 1
            self._url_index = (self._url_index + 1) % len(self.urls)
            await self._sleep(delay)

    async def _visit(self, *, reconnected: bool) -> tuple[bool, int | None]:
        """One socket, from connecting to its end: whether it was welcomed, and its close code."""
        welcomed = False
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
                self.ws = ws
                self._refused = None
                welcomed = await self._welcomed(ws, reconnected=reconnected)
                if welcomed:
                    code = await self._serve(ws)
                if code is None:
                    code = ws.close_code
        except aiohttp.WSServerHandshakeError as exc:
            log.debug("connection attempt refused: %s", exc)
            self._refused = _refusal(self.url, exc.status)
            code = CloseCode.ABNORMAL
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.debug("connection attempt failed: %s", exc)
            self._refused = None
            code = CloseCode.ABNORMAL
        finally:
            self.ws = None
        return welcomed, code

    def _target(self) -> str:
        """The URL to connect to: with ``resume`` (and the inbox's last ``seq``) once known."""
        if not self._status.resume:
            return self.url
        parts = urlsplit(self.url)
        params: dict[str, Any] = {"resume": self._status.resume}
        if self._inbox.last:
            params[protocol.QUEUED_PARAM] = self._inbox.last
        query = "&".join(filter(None, [parts.query, urlencode(params)]))
        return urlunsplit(parts._replace(query=query))

    async def _welcomed(self, ws: aiohttp.ClientWebSocketResponse, *, reconnected: bool) -> bool:
        status = self._status
        msg = await ws.receive(timeout=30)
        if msg.type is aiohttp.WSMsgType.CLOSE:  # refused at once, e.g. 4401 with the reason
            status.close_reason = msg.extra if isinstance(msg.extra, str) else ""
            return False
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return False
        parsed = protocol.parse_server(msg.data)
        if parsed is None or parsed.kind is not Kind.WELCOME:
            return False
        self._listeners.show_raw(parsed.raw)
        status.welcome = parsed.data if isinstance(parsed.data, dict) else {}
        status.client_id = status.welcome.get("client_id")
        status.resume = status.welcome.get("resume")
        status.state = "open"
        if self._first is not None and not self._first.done():
            self._first.set_result(None)
        self._channels.welcomed(status.welcome.get("channels"))
        if reconnected:
            self._channels.rejoin_all()
        await self._listeners.emit("ws:reconnect" if reconnected else "ws:connect", status.welcome)
        return True

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> int | None:
        """Read frames until the connection ends; the code of the server's close frame, if one
        came. It is taken from the frame, not from ``ws.close_code``: aiohttp replaces that by
        1006 when our close reply cannot be written. A draining server (1001) closes its side
        right after its close frame, so a client busy in a listener just then finds its
        transport gone, and would otherwise report a lost connection."""
        writer = self._tasks.spawn(self._outbox.write(ws))
        beat = self._tasks.spawn(self._heartbeats()) if self.heartbeat else None
        try:
            while True:
                msg = await ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._dispatch.receive(msg.data)
                elif msg.type is aiohttp.WSMsgType.CLOSE:
                    self._status.close_reason = msg.extra if isinstance(msg.extra, str) else ""
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
        period = self._status.welcome.get("heartbeat")
        if not isinstance(period, int | float) or period <= 0:
            return
        while True:
            await asyncio.sleep(period)
            with contextlib.suppress(MonumentWSError):
                self._outbox.put(protocol.push("ws:heartbeat", None))

    def _dropped(self, policy: Reconnect) -> None:
        """The connection is gone: sent calls fail or go back in the outbox, in order; after
        1009 the call written last fails with TooLarge instead."""
        self._status.state = "reconnecting"
        too_big = self._outbox.last_sent if policy is Reconnect.DROP_MESSAGE else None
        self._calls.dropped(too_big)

    def _finish(self, code: int | None, reason: str) -> bool:
        """Fail what waits and stop; False if the client had already finished."""
        status = self._status
        if status.state == "closed":
            return False
        status.state = "closed"
        status.close_code = code
        status.close_reason = reason
        self._calls.fail_all(f"the connection closed ({code}: {reason})")
        self._outbox.clear()
        self._tasks.cancel()
        if self._first is not None and not self._first.done():
            self._first.set_exception(
                ConnectionLost(
                    self._refused or f"could not connect to {self.url} ({code}: {reason})"
                )
            )
            self._first.exception()
        if not status.closing:  # close() emits it itself, after the tasks are gone
            self._tasks.spawn(self._listeners.emit("ws:close", {"code": code, "reason": reason}))
        return True


def _policy(code: int | None) -> Reconnect:
    """What the close-code table says to do after ``code``; unknown codes back off."""
    if code is None:
        return Reconnect.BACKOFF
    try:
        return CloseCode(code).reconnect
    except ValueError:
        return Reconnect.BACKOFF


def _refusal(url: str, status: int) -> str | None:
    """What to say when ``url`` answered the upgrade with plain HTTP ``status``; None when it
    did switch protocols (101) and failed later in the handshake."""
    if status == 101:
        return None
    hint = " (is websocket=True set on the server, and is the path right?)" if status == 404 else ""
    return f"{url} answered HTTP {status}, not a WebSocket upgrade{hint}"
