"""What the client knows about its connection now.

Only the reconnect loop (:mod:`.connection`) writes it; the outbox, the pending
calls and the channels read it to decide whether a frame may still go out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Status:
    state: str = "idle"  # idle → connecting → open ⇄ reconnecting → closed
    welcome: dict[str, Any] = field(default_factory=dict)  # the last ws:welcome's data
    client_id: str | None = None
    resume: str | None = None  # the secret that keeps client_id across reconnects
    close_code: int | None = None
    close_reason: str = ""
    closing: bool = False  # close() was called: nothing reconnects any more

    @property
    def connected(self) -> bool:
        return self.state == "open"

    @property
    def ended(self) -> bool:
        """Closed for good, or closing: new requests fail at once."""
        return self.closing or self.state == "closed"
