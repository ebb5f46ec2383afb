"""Staged auth (``ws:auth``): the stage the server reports, and the calls that move it.

The server says a socket's stage in every welcome (``stage``: ``"anonymous"``,
``"authenticated"`` or a step of its authenticator) and in every ``ws:auth`` reply
(``{"stage": <the next stage>, "data": <the authenticator's answer>}``). :class:`Auth`
keeps the last one it was told in ``stage`` and emits ``ws:stage`` (``{stage, previous}``)
each time it changes. It hears the welcome through the ``ws:connect`` and ``ws:reconnect``
listeners it registers when it is built, before any of the user's, so those already see
the new stage.

A refused stage (an ``unauthorized`` answer) raises :class:`AuthFailed` and leaves the
stage as it was: the server did not move the socket either.

A reconnect is a new socket: the server runs its session parser again and forgets what
``ws:auth`` established on the old one, resume or not. The welcome's stage (say
``"anonymous"``) then replaces the client's, with a ``ws:stage`` event; the client does not
replay the stages by itself, since a challenge's answer is seldom valid twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..protocol.errors import AuthFailed, Unauthorized
from .calls import DEFAULT, Calls
from .listeners import Listeners

#: The command of staged auth.
AUTH_EVENT = "ws:auth"
#: The lifecycle event emitted when the stage changes: ``{"stage", "previous"}``.
STAGE_EVENT = "ws:stage"


class Auth:
    def __init__(self, calls: Calls, listeners: Listeners) -> None:
        #: the socket's stage as the server last reported it; None before the first welcome
        self.stage: str | None = None
        self._calls = calls
        self._listeners = listeners
        listeners.on("ws:connect", self._welcomed)
        listeners.on("ws:reconnect", self._welcomed)

    async def auth(
        self, stage: str, payload: Mapping[str, Any] | None, timeout: float | None = DEFAULT
    ) -> Any:
        """Send ``ws:auth`` with ``{"stage": stage, **payload}``; return the authenticator's
        answer once the stage moved. Raises AuthFailed when the server refuses the stage,
        ValueError or TypeError for a payload that cannot carry it, else like a call."""
        if not isinstance(stage, str) or not stage:
            raise ValueError("auth() needs a stage: a non-empty string")
        if payload is not None and not isinstance(payload, Mapping):
            raise TypeError(f"the auth payload must be a mapping, not {type(payload).__name__}")
        if payload is not None and "stage" in payload:
            raise ValueError("the auth payload may not have a 'stage' key: pass it as stage")
        data = {**(payload or {}), "stage": stage}
        try:
            reply = await self._calls.call(AUTH_EVENT, data, timeout=timeout)
        except AuthFailed:
            raise
        except Unauthorized as exc:
            failed = AuthFailed(exc.message, stage=stage, data=exc.data)
            failed.remote = exc.remote
            raise failed from exc
        if not isinstance(reply, dict):
            return None
        next_stage = reply.get("stage")
        if isinstance(next_stage, str):
            await self._move(next_stage)
        return reply.get("data")

    async def _welcomed(self, welcome: Any) -> None:
        stage = welcome.get("stage") if isinstance(welcome, dict) else None
        await self._move(stage if isinstance(stage, str) else None)

    async def _move(self, stage: str | None) -> None:
        previous = self.stage
        if stage == previous:
            return
        self.stage = stage
        await self._listeners.emit(STAGE_EVENT, {"stage": stage, "previous": previous})
