"""An example session parser: an HMAC-signed token in a cookie or an Authorization header.

This shows how to plug authentication in; it is an example, not a security
product. Tokens are not read from the query string, so they stay out of
access logs. Without a token the socket is anonymous (the demo is public);
a bad or expired token is refused with 4401 and the reason.

    token = make_token("ada")            # e.g. set as the "token" cookie at login
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time

from aiohttp import web

from monument_ws import Unauthorized
from monument_ws.auth import Session

SECRET = os.environ.get("APP_SECRET", "change-me-in-production").encode()


def _sign(payload: str) -> str:
    digest = hmac.new(SECRET, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_token(user: str, ttl: float = 3600, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + ttl)
    payload = f"{user}.{expires}"
    return f"{payload}.{_sign(payload)}"


async def parse(request: web.Request) -> Session:
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else request.cookies.get("token")
    if not token:
        return Session()
    try:
        user, expires_text, signature = token.rsplit(".", 2)
        expires = int(expires_text)
    except ValueError:
        raise Unauthorized("malformed token") from None
    if not hmac.compare_digest(signature, _sign(f"{user}.{expires_text}")):
        raise Unauthorized("bad token signature")
    if expires < time.time():
        raise Unauthorized("token expired")
    return Session(user=user, id=signature, expires_at=float(expires))
