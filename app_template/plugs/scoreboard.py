"""The event "scoreboard": a big object sent as SYNC, so each update costs only its patch.

The client keeps the whole board (``client.synced("scoreboard")``); the server
sends it once, then RFC 6902 patches of what changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from monument_ws import Frame, Socket
from monument_ws.yields import sync


async def handle(message: Frame, socket: Socket) -> AsyncIterator[Any]:
    board = {f"player{n}": 0 for n in range(50)}
    for round_ in range(min(int(message.data or 3), 20)):
        board[f"player{round_ % 50}"] += 1
        yield sync(board)
