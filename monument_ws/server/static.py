"""The browser client served by the application itself: ``monument.js`` at ``client_path`` and
its TypeScript declarations, ``monument.d.ts``, beside it.

Both are the files shipped inside the package (read once per process), served with an ETag and
cache headers: with ``?v=<the served version>`` a response may be cached for a year
(``immutable``), without it for five minutes and then revalidated by ETag.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from .._version import __version__


def add_routes(app: web.Application, client_path: str) -> None:
    """Serve the script at ``client_path`` and its declarations at :func:`types_path`."""
    types = types_path(client_path)
    app.router.add_get(
        client_path,
        functools.partial(serve_static, "monument.js", "text/javascript", types),
        name="monument_ws_client",
    )
    app.router.add_get(
        types,
        functools.partial(serve_static, "monument.d.ts", "application/typescript", None),
        name="monument_ws_client_types",
    )


def types_path(client_path: str) -> str:
    """Where the client's TypeScript declarations are served: ``client.js`` → ``client.d.ts``."""
    return client_path.removesuffix(".js") + ".d.ts"


async def serve_static(
    name: str, content_type: str, types: str | None, request: web.Request
) -> web.Response:
    """GET one packaged file, answering 304 when the client's ETag matches.

    The script's response names its declarations in ``X-TypeScript-Types`` (read by Deno and
    some bundlers); every response says the served version in ``X-Monument-WS-Version``.
    """
    script = packaged_static(name)
    headers = {
        "ETag": script.etag,
        "X-Monument-WS-Version": __version__,
        "Cache-Control": "public, max-age=31536000, immutable"
        if request.query.get("v") == __version__
        else "public, max-age=300, must-revalidate",
    }
    if types is not None:
        headers["X-TypeScript-Types"] = types
    if script.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=script.body, content_type=content_type, charset="utf-8", headers=headers
    )


@dataclass(frozen=True, slots=True)
class ClientScript:
    body: bytes
    etag: str


@functools.cache
def packaged_static(name: str) -> ClientScript:
    """A file of ``monument_ws/static`` as shipped inside the package (read once per process)."""
    body = resources.files("monument_ws").joinpath("static", name).read_bytes()
    return ClientScript(body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
