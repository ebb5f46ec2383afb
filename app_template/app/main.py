"""The application factory: ``monument-ws run app:create_app`` serves it."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

import monument_ws
from monument_ws import Config, NotFound, events

from . import auth, data, handlers

STATIC = Path(__file__).parent / "static"
#: The project's root: a relative plugs folder (the default ./plugs) is found here.
PROJECT = Path(__file__).parent.parent
#: The earlier systems' own clients keep working on these paths, each speaking its wire format
#: (docs: "Coming from serverless-sockets", "… super-scaled-sockets", "… @owlmeans/socket"):
#: the same plugs, handlers and chat channel as /ws.
ENDPOINTS = {"/ss": "serverless-sockets", "/sss": "super-scaled-sockets", "/owl": "owlmeans"}


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def api(request: web.Request) -> web.Response:
    """GET /api/<name> (and /api/<name>/<id> for a collection): asks the same provider that
    answers the socket's data:get:<name> (data:get:<name>:<id>). The module of a dashed name
    has an underscore for each dash (data:get:this-item: app/data/this_item.py)."""
    name = request.match_info["name"]
    if name.replace("-", "_") not in data.__all__:
        raise web.HTTPNotFound(text=f"no data provider {name!r}")
    item = request.match_info.get("id")
    event = f"data:get:{name}" if item is None else f"data:get:{name}:{item}"
    try:
        return web.json_response(await events.ask(event))
    except NotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None


def create_app(config: Config | None = None) -> web.Application:
    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/api/{name}", api)
    app.router.add_get("/api/{name}/{id}", api)
    cfg = config or Config(websocket=True)
    if cfg.plugs:
        cfg = cfg.replace(plugs=str(PROJECT / cfg.plugs))
    given = dict(cfg.endpoints)  # an endpoint the configuration names wins
    extra = tuple((path, name) for path, name in ENDPOINTS.items() if path not in given)
    cfg = cfg.replace(endpoints=(*cfg.endpoints, *extra))
    ws = monument_ws.setup(app, cfg)
    # Subscribers of "chat" may publish to it, see who is there, and who joins and leaves.
    ws.namespaces.add(
        "chat", publish="subscribers", presence=True, join_leave=True, history_size=50
    )
    ws.session_parser = auth.parse  # an example: signed token in a cookie or header
    handlers.register(ws)
    return app
