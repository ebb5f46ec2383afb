"""Who a socket is, and until when: the session parser at the upgrade, the ``ws:auth`` stages,
and the watcher that closes a socket whose credentials lapse.

* The session parser (``ws.session_parser``) runs once per upgrade, after the WebSocket is
  accepted: a refusal (``Unauthorized``, or None) closes it with 4401 and the reason -- a
  browser cannot read an HTTP 401 on an upgrade -- and a parser that raises anything else
  closes it with 1011. A session with a user or an id makes the socket ``authenticated``.
* ``ws:auth`` runs the authenticator (``ws.authenticator``) for one stage. A session it returns
  replaces the socket's -- a refresh moves ``expires_at`` -- and the socket joins the reserved
  channels of its new user and session.
* The watcher runs for sockets with a deadline: with ``require_auth``, one not
  ``authenticated`` after ``auth_timeout`` seconds is closed with 1008; one whose
  ``session.expires_at`` has passed is closed with 4401. A session with an expiry that
  ``ws:auth`` hands over restarts the socket's watcher, so an expiry is enforced whether it came
  at the upgrade or later, and a refresh that moves it, later or sooner, takes effect at once.
  It sleeps at most an hour at a time. Time is ``clock()`` (seconds, like ``expires_at``) and
  waiting is ``sleep(seconds)``; both come from ``setup()``, so tests move a fake clock instead
  of sleeping. Sockets without a deadline have no watcher task at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..config import Config
from ..connection.auth import AUTHENTICATED, Authenticator, Session, SessionParser
from ..connection.socket import Socket
from ..connection.stats import Stats
from ..protocol.errors import BadFrame, NotFound, Unauthorized
from ..protocol.frames import CloseCode, Frame
from .refusals import refuse

log = logging.getLogger("monument_ws")

#: The longest the watcher sleeps before it looks at a session again.
LONGEST_SLEEP = 3600.0


class Credentials:
    """The sessions of one plugin instance's sockets."""

    def __init__(
        self,
        config: Config,
        stats: Stats,
        join_reserved: Callable[[Socket], Awaitable[Any]],
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.config = config
        self.stats = stats
        self._join_reserved = join_reserved
        self.clock = clock
        self.sleep = sleep
        #: ``async def parse(request) -> Session`` run at every upgrade; None: all anonymous.
        self.session_parser: SessionParser | None = None
        #: ``async def authenticate(socket, stage, data) -> AuthStep`` answering ws:auth.
        self.authenticator: Authenticator | None = None
        self._watchers: dict[Socket, asyncio.Task[None]] = {}

    # --- at the upgrade -----------------------------------------------------

    async def parse(self, request: web.Request, ws: web.WebSocketResponse) -> Session | None:
        """Run the session parser; on refusal close ``ws`` (4401 and the reason) and return None."""
        if self.session_parser is None:
            return Session()
        try:
            session = await self.session_parser(request)
            if session is None:
                raise Unauthorized("the session parser refused the connection")
        except Unauthorized as exc:
            refuse(self.stats, "session", "%s", exc.message)
            await ws.close(code=CloseCode.UNAUTHORIZED, message=exc.message.encode()[:123])
            return None
        except Exception:
            log.exception("the session parser failed")
            self.stats.refused["session_error"] += 1
            await ws.close(code=CloseCode.INTERNAL, message=b"internal error")
            return None
        return session

    @staticmethod
    def admit(socket: Socket, session: Session) -> None:
        """Give a new socket the session the parser returned."""
        if session.user is not None or session.id is not None:
            socket.stage = AUTHENTICATED
        _hand(socket, session)

    # --- ws:auth --------------------------------------------------------------

    async def auth_command(self, socket: Socket, frame: Frame) -> Any:
        data = frame.data
        stage = data.get("stage") if isinstance(data, dict) else None
        if not isinstance(stage, str) or not stage:
            raise BadFrame("ws:auth needs data {'stage': <str>, ...}")
        if self.authenticator is None:
            raise NotFound("this server has no ws:auth stages")
        try:
            step = await self.authenticator(socket, stage, data)
        except Unauthorized as exc:
            refuse(self.stats, "auth", "stage %r of socket %s: %s", stage, socket.id, exc.message)
            raise
        socket.stage = step.stage
        if step.session is not None:
            _hand(socket, step.session)
            if step.session.expires_at is not None and not socket.closed:
                self._restart_watcher(socket)
            await self._join_reserved(socket)
        return {"stage": socket.stage, "data": step.reply}

    # --- the watcher ----------------------------------------------------------

    def watch(self, socket: Socket) -> None:
        """Start the watcher of a new socket that has a deadline; :meth:`forget` it when it closes."""
        if self.config.require_auth or socket.session.expires_at is not None:
            self._restart_watcher(socket)

    def forget(self, socket: Socket) -> None:
        """``socket`` closed: stop its watcher, if it has one."""
        watcher = self._watchers.pop(socket, None)
        if watcher is not None:
            watcher.cancel()

    def _restart_watcher(self, socket: Socket) -> None:
        self.forget(socket)
        self._watchers[socket] = asyncio.get_running_loop().create_task(self._watch(socket))

    async def _watch(self, socket: Socket) -> None:
        if not await self._authenticated_in_time(socket):
            return
        while socket.session.expires_at is not None:
            remaining = socket.session.expires_at - self.clock()
            if remaining <= 0:
                refuse(self.stats, "expired", "credentials of socket %s expired", socket.id)
                await socket.close(CloseCode.UNAUTHORIZED, "credentials expired")
                return
            await self.sleep(min(remaining, LONGEST_SLEEP))

    async def _authenticated_in_time(self, socket: Socket) -> bool:
        """With ``require_auth``: wait out ``auth_timeout``, close the socket if it is still not
        authenticated, and say whether it is."""
        cfg = self.config
        if not cfg.require_auth or socket.stage == AUTHENTICATED:
            return True
        await self.sleep(cfg.auth_timeout)
        if socket.stage == AUTHENTICATED:
            return True
        refuse(
            self.stats,
            "auth_timeout",
            "socket %s did not authenticate in %g s",
            socket.id,
            cfg.auth_timeout,
        )
        await socket.close(CloseCode.POLICY, "authentication timed out")
        return False


def _hand(socket: Socket, session: Session) -> None:
    """``socket`` is now ``session``'s; handlers find the user in ``socket.state["user"]``."""
    socket.session = session
    if session.user is not None:
        socket.state["user"] = session.user
