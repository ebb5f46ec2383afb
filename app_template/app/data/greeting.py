"""The greeting: answers ``data:get:greeting`` (HTTP and sockets) with ``data:set:greeting``."""

from __future__ import annotations

from typing import Any

from monument_ws import events


@events.on("data:get:greeting")
async def provide(event: str, **_: Any) -> dict[str, str]:
    # Return the value, or emit "data:set:greeting" with request=request when
    # the answer comes later (e.g. from a database callback).
    return {"greeting": "Hello from monument_ws!"}
