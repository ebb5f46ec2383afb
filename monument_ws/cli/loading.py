"""Finding the application ``run`` serves: ``MODULE:FACTORY``, imported and called, or
``MODULE:APP``, an application the module already built; without either, the plugs folder of
the current directory or the demo (:func:`choose_app`)."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path

import click
from aiohttp import web

from .. import config as config_module
from ..config import Config

#: The demo app, served by ``run`` without a MODULE:FACTORY where there is no plugs folder;
#: ``new`` copies its project.
DEFAULT_APP = "monument_ws.app_template.app:create_app"
#: The plain app ``run`` serves for a plugs folder without a MODULE:FACTORY.
PLUGS_APP = "monument_ws.cli.plugs_app:create_app"
#: The ``plugs`` setting's default, ``./plugs``.
DEFAULT_PLUGS: str = next(i.default for i in config_module.schema() if i.name == "plugs")


def choose_app(target: str | None, cfg: Config, plugs_given: bool) -> tuple[str, Config]:
    """What ``run`` serves, and with which config, given its MODULE:FACTORY argument or None.

    A ``plugs`` setting given to ``run`` (flag, environment or config file) and relative is
    made absolute against the current directory, so an app's factory receives the folder the
    user named. Without ``target``: a given, non-empty ``plugs`` folder, or else ``./plugs``
    when that directory exists, is served by the plain :data:`PLUGS_APP` (a given folder that
    is not a directory is a usage error); otherwise the demo, which keeps its own plugs folder. A factory given no ``plugs`` keeps the default
    ``./plugs``, which the template's factory resolves against its project directory.
    """
    if plugs_given and cfg.plugs:
        cfg = cfg.replace(plugs=str(Path(cfg.plugs).absolute()))
    if target is not None:
        return target, cfg
    if plugs_given and cfg.plugs:
        if not Path(cfg.plugs).is_dir():
            raise click.UsageError(
                f"the plugs folder {cfg.plugs} is not a directory: without MODULE:FACTORY, run "
                "serves the folder --plugs names (relative to the current directory)"
            )
        return PLUGS_APP, cfg
    if not plugs_given and Path(DEFAULT_PLUGS).is_dir():
        return PLUGS_APP, cfg.replace(plugs=str(Path(DEFAULT_PLUGS).absolute()))
    return DEFAULT_APP, cfg


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
