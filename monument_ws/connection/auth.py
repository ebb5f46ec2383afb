"""Who a connecting client is: resume secrets, sessions, staged auth, client addresses.

The server issues every socket a ``client_id`` and a ``resume`` secret (in
``ws:welcome``). A client that reconnects presents the secret (``?resume=`` on
the upgrade URL) and gets the same ``client_id`` back; presence, send-to-client
and peer queues key on it. A client can never choose its own id: the secret is
``<client_id>.<issued>.<signature>``, an HMAC-SHA256 over the id and the issue
time with the configured ``secret``. Verification needs no storage, so any
process sharing the secret can resume any client. A secret older than
``resume_ttl`` seconds, or one that does not verify, is ignored and the client
gets a new id. Secrets that are well formed but signed with another key are
counted (:attr:`ResumeTokens.mismatches`): processes sharing a broker with
different ``secret`` settings, or a restart without a fixed one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class ResumeTokens:
    """Issues client ids with resume secrets and verifies returning ones."""

    def __init__(
        self,
        key: str = "",
        ttl: float = 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key.encode() if key else secrets.token_bytes(32)
        self._ttl = ttl
        self._clock = clock
        #: Well-formed secrets whose signature did not verify: another key signed them.
        self.mismatches = 0

    def _sign(self, client_id: str, issued: int) -> str:
        mac = hmac.new(self._key, f"{client_id}.{issued}".encode(), hashlib.sha256)
        return _b64(mac.digest()[:18])

    def issue(self, client_id: str | None = None) -> tuple[str, str]:
        """Return ``(client_id, resume_secret)``; a new random id unless one is given."""
        client_id = client_id or _b64(secrets.token_bytes(12))
        issued = int(self._clock())
        return client_id, f"{client_id}.{issued}.{self._sign(client_id, issued)}"

    def verify(self, secret: str | None) -> str | None:
        """The client id a resume secret proves, or None if it proves nothing."""
        if not secret or len(secret) > 128:
            return None
        parts = secret.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        client_id, issued_text, signature = parts
        issued = int(issued_text)
        if not hmac.compare_digest(signature, self._sign(client_id, issued)):
            self.mismatches += 1
            return None
        if self._ttl and self._clock() - issued > self._ttl:
            return None
        return client_id


@dataclass(frozen=True, slots=True)
class Session:
    """Who a socket belongs to, as the session parser (or ``ws:auth``) established it.

    ``expires_at`` (seconds, the plugin's clock) ends the credentials: before
    it the client refreshes them over ``ws:auth``, otherwise the socket is
    closed with 4401.
    """

    user: str | None = None
    id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class AuthStep:
    """What an authenticator answers to one ``ws:auth`` stage.

    ``stage`` is the socket's next stage (``"authenticated"`` opens the
    socket); ``reply`` goes back to the client; ``session``, when given,
    replaces the socket's session (user, claims, expiry).
    """

    stage: str
    reply: Any = None
    session: Session | None = None


#: ``async def parse(request) -> Session``: raise Unauthorized("reason") (or return None) to refuse.
SessionParser = Callable[[Any], Awaitable["Session | None"]]
#: ``async def authenticate(socket, stage, data) -> AuthStep``: raise Unauthorized to refuse.
Authenticator = Callable[[Any, str, Any], Awaitable[AuthStep]]

AUTHENTICATED = "authenticated"


def channel_of_user(user: str) -> str:
    """The reserved channel reaching every socket of ``user`` on every process."""
    return "$user:" + user


def channel_of_session(session: str) -> str:
    """The reserved channel of a session: named from a hash, never the raw session id."""
    return "$session:" + hashlib.sha256(session.encode()).hexdigest()[:32]


def client_ip(peer: str | None, forwarded_for: str | None, trusted: tuple[str, ...]) -> str:
    """The client's address: the peer, or -- only when the peer is a trusted proxy -- the
    nearest untrusted address of X-Forwarded-For."""
    if peer is None:
        return "unknown"
    if not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _trusted(address: str, trusted: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(entry, strict=False) for entry in trusted)
