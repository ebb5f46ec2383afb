"""Hooks of the plugs folder: ``init(app)`` runs once at start, before any plug is imported
(open database pools here); ``shutdown(app)`` runs once after every socket closed."""

from __future__ import annotations

import logging

from aiohttp import web

log = logging.getLogger("app.plugs")


async def init(app: web.Application) -> None:
    log.info("plugs starting")


async def shutdown(app: web.Application) -> None:
    log.info("plugs stopped")
