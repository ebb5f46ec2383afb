"""Sessions, staged auth and client addresses (documented path; lives in :mod:`monument_ws.connection.auth`)."""

from .connection.auth import (
    AUTHENTICATED,
    Authenticator,
    AuthStep,
    ResumeTokens,
    Session,
    SessionParser,
    channel_of_session,
    channel_of_user,
    client_ip,
)

__all__ = [
    "AUTHENTICATED",
    "AuthStep",
    "Authenticator",
    "ResumeTokens",
    "Session",
    "SessionParser",
    "channel_of_session",
    "channel_of_user",
    "client_ip",
]
