"""The app ``run`` serves for a plugs folder when it is given no MODULE:FACTORY.

serverless-sockets' workflow: a folder holding ``plugs/`` is served by running the command in it,
with no application code. This is a plain aiohttp application with the plugin mounted and the
folder as its ``plugs`` setting; it has none of the demo's page, HTTP routes or handlers.
"""

from __future__ import annotations

from aiohttp import web

from ..config import Config
from ..mount import setup


def create_app(config: Config) -> web.Application:
    """An application with only monument_ws, serving ``config.plugs`` (an absolute path: ``run``
    resolves a relative one against the directory it was started in)."""
    app = web.Application()
    setup(app, config)
    return app
