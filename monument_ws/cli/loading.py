"""Finding the application ``run`` serves: ``MODULE:FACTORY``, imported and called, or
``MODULE:APP``, an application the module already built."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path

import click
from aiohttp import web

from ..config import Config

#: The demo app, served by ``run`` without a MODULE:FACTORY; ``new`` copies its project.
DEFAULT_APP = "monument_ws.app_template.app:create_app"


def load_app(target: str, cfg: Config, ignored: Sequence[str] = ()) -> web.Application:
    """Import ``module:factory`` (the current directory is importable) and build the app.

    A factory with a ``config`` parameter is given ``cfg``. ``target`` may also name an
    application the module built at import (``example:app``): it keeps the settings of its
    own ``setup()`` call, so a warning on stderr names the ``ignored`` settings given to
    ``run`` (flags, environment, config file) that only a factory would have received.
    Every failure is a click.UsageError saying what was wrong with ``target``.
    """
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise click.UsageError(f"expected MODULE:FACTORY, e.g. app:create_app, got {target!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.UsageError(f"cannot import {module_name!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise click.UsageError(f"{module_name!r} has no attribute {attr!r}")
    if isinstance(factory, web.Application):
        if ignored:
            click.echo(
                f"Warning: {target} is an application built at import, not a factory: it keeps "
                f"the settings of its own setup() call, so {', '.join(ignored)} "
                f"{'is' if len(ignored) == 1 else 'are'} ignored (pass them to setup(), or "
                "make it a factory with a config parameter)",
                err=True,
            )
        return factory
    if "config" in inspect.signature(factory).parameters:
        application = factory(config=cfg)
    else:
        application = factory()
    if not isinstance(application, web.Application):
        raise click.UsageError(
            f"{target} returned {type(application).__name__}, not an aiohttp Application"
        )
    return application
