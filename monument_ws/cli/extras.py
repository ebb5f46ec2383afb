"""The optional dependencies ``run``'s settings need, checked before anything starts.

A missing one is a :class:`~monument_ws.protocol.errors.MissingExtra`, which ``run``
prints as one line naming the ``pip install 'monument-ws[EXTRA]'`` that brings it.
The library raises the same error where it imports them (for settings an app gives
in code); checking here first also covers every ``--workers`` process at once.
"""

from __future__ import annotations

import importlib

import click

from .. import brokers, stores
from ..config import Config
from ..protocol.errors import MissingExtra


def require_extras(cfg: Config) -> None:
    """Raise MissingExtra for the first setting of ``cfg`` whose dependency cannot be imported;
    click.UsageError for a broker URL no broker serves."""
    needed = []
    if cfg.reload:
        needed.append(("reload", "watchfiles", "watchfiles", "reload"))
    if cfg.metrics:
        needed.append(("metrics", "prometheus_client", "prometheus-client", "metrics"))
    for feature, module, package, extra in needed:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtra(feature, package, extra) from None
    try:
        brokers.check_url(cfg.broker)
    except MissingExtra:
        raise
    except ValueError as exc:
        raise click.UsageError(f"--broker: {exc}") from None
    try:
        stores.check_url(cfg.store)
    except MissingExtra:
        raise
    except ValueError as exc:
        raise click.UsageError(f"--store: {exc}") from None
