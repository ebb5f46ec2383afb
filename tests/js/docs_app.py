"""The apps of docs/websockets.md's python blocks, served for the JS examples that go with them.

``monument-ws run tests.js.docs_app:middleware_app`` serves the frame-middleware example app
exactly as the docs print it, plus ``GET /`` (the harness waits for it) and ``GET /audit`` (what
its raw listener recorded). ``queue_app`` serves the peer-queue example app the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp import web

DOCS = Path(__file__).resolve().parents[2] / "docs" / "websockets.md"


def docs_app(marker: str) -> tuple[web.Application, dict[str, Any]]:
    """Run the one python block of the docs that defines ``app`` and contains ``marker``."""
    blocks = re.findall(r"^```python\n(.*?)^```", DOCS.read_text(), re.MULTILINE | re.DOTALL)
    (code,) = [c for c in blocks if "\napp = " in c and marker in c]
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(code, str(DOCS), "exec"), namespace)
    app: web.Application = namespace["app"]

    async def index(request: web.Request) -> web.Response:
        return web.Response(text="docs example")

    app.router.add_get("/", index)
    return app, namespace


def middleware_app() -> web.Application:
    app, namespace = docs_app("def no_admin")

    async def audit(request: web.Request) -> web.Response:
        return web.json_response(namespace["audit"])

    app.router.add_get("/audit", audit)
    return app


def queue_app() -> web.Application:
    return docs_app('"inbox"')[0]
