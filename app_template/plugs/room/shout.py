"""The event "room/shout": tells every connected socket, then confirms to the sender."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from monument_ws import Frame, Socket
from monument_ws.yields import broadcast


async def handle(message: Frame, socket: Socket) -> AsyncIterator[Any]:
    yield broadcast({"from": socket.client_id, "text": message.data})
    yield "shouted"
