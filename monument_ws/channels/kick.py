"""Kicking: an order, sent through the broker to every process, to close some sockets with 4409.

A kick names its target by client id, by user, by session, by channel (its
subscribers) or all (every socket), and carries a reason. Every process (the
sender's included) closes its own matching sockets with close code 4409 and the
reason in the close frame; clients do not reconnect after 4409 (the close-code
table of docs/protocol.md). The order itself is at most once per process and
not stored: a socket that connects after the order went out is not kicked --
refuse it in the session parser instead.

Wire form between processes (never seen by clients): a JSON object
``{"kick": "client_id" | "user" | "session" | "channel" | "all", "target": str, "reason": str}``
(``target`` is ``""`` for ``all``)
published with :meth:`Broker.control <monument_ws.brokers.base.Broker.control>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import orjson

from ..connection.auth import channel_of_session, channel_of_user
from ..protocol.frames import check_channel, truncate

By = Literal["client_id", "user", "session", "channel", "all"]
BY: Final = ("client_id", "user", "session", "channel", "all")


@dataclass(frozen=True, slots=True)
class Kick:
    """Close every socket of one client id, user, session or channel, or all, on every process."""

    by: By
    target: str
    reason: str

    @classmethod
    def of(
        cls,
        *,
        client_id: str | None = None,
        user: str | None = None,
        session: str | None = None,
        channel: str | None = None,
        all: bool = False,  # the caller's word, kick(all=True), though it shadows the builtin
        reason: str = "kicked",
    ) -> Kick:
        """Build from exactly one of ``client_id``, ``user``, ``session``, ``channel`` and
        ``all=True``; else ValueError (also for an empty target or a bad channel name)."""
        if not isinstance(all, bool):
            raise ValueError("all must be True or False")
        named = (("client_id", client_id), ("user", user), ("session", session))
        given = [(by, value) for by, value in (*named, ("channel", channel)) if value is not None]
        if all:
            given.append(("all", ""))
        if len(given) != 1:
            raise ValueError(
                "kick() needs exactly one of client_id=, user=, session=, channel= or all=True"
            )
        by, target = given[0]
        if by != "all" and (not isinstance(target, str) or not target):
            raise ValueError(f"{by} must be a non-empty string")
        if by == "channel":
            problem = check_channel(target)
            if problem is not None:
                raise ValueError(problem)
        if not isinstance(reason, str):
            raise ValueError("reason must be a string")
        return cls(by, target, truncate(reason))  # type: ignore[arg-type]

    @property
    def channel(self) -> str | None:
        """The channel whose local subscribers are the target (None: by client id, or all).
        A user's or session's sockets all join its reserved channel."""
        if self.by == "user":
            return channel_of_user(self.target)
        if self.by == "session":
            return channel_of_session(self.target)
        if self.by == "channel":
            return self.target
        return None

    def encode(self) -> bytes:
        return orjson.dumps({"kick": self.by, "target": self.target, "reason": self.reason})

    @classmethod
    def decode(cls, message: bytes) -> Kick | None:
        """The order in ``message``, or None when it is not a well-formed kick."""
        try:
            obj = orjson.loads(message)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict):
            return None
        by, target, reason = obj.get("kick"), obj.get("target"), obj.get("reason")
        if by not in BY or not isinstance(target, str) or not isinstance(reason, str):
            return None
        return cls(by, target, reason)
