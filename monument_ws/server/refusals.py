"""Refusals: every upgrade, session, subscription or auth stage the server refuses is counted
by reason in ``stats.refused`` (the ``monument_ws_refused_total`` metric, the admin page) and
logged once, as a warning on the ``monument_ws`` logger."""

from __future__ import annotations

import logging
from typing import Any

from ..connection.stats import Stats

log = logging.getLogger("monument_ws")


def refuse(stats: Stats, reason: str, detail: str, *args: Any) -> None:
    """Count one refusal under ``reason`` and log ``detail % args``."""
    stats.refused[reason] += 1
    log.warning("refused (%s): " + detail, reason, *args)
