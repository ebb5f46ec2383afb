"""``monument-ws run``: serve an app, in one process or several on one port."""

from __future__ import annotations

import logging
import os
import secrets

import click
from aiohttp import web

from .. import config as config_module
from ..config import Config
from ..protocol.errors import MissingExtra
from ..server import logs
from .banner import announce, describe
from .connections import listen
from .extras import require_extras
from .listening import cannot_listen, probe_port, tls_context
from .loading import DEFAULT_PLUGS, choose_app, load_app
from .options import (
    CONTEXT,
    GroupedCommand,
    GroupedOption,
    build_config,
    config_options,
    given_settings,
)
from .workers import serve_workers


@click.command(
    cls=GroupedCommand,
    context_settings=CONTEXT,
    short_help="Serve an app (default: ./plugs, else the demo).",
)
@click.argument("app", required=False, metavar="[MODULE:FACTORY|MODULE:APP]")
@click.option(
    "--host",
    cls=GroupedOption,
    group="server",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    help="Interface to listen on.",
)
@click.option(
    "--port",
    cls=GroupedOption,
    group="server",
    default=8080,
    show_default=True,
    type=int,
    metavar="PORT",
    help="TCP port.",
)
@click.option(
    "--workers",
    cls=GroupedOption,
    group="server",
    metavar="N",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Processes serving the same port (SO_REUSEPORT); needs a shared broker such as redis://.",
)
@click.option(
    "--config",
    "config_file",
    cls=GroupedOption,
    group="operations",
    type=click.Path(dir_okay=False),
    help="A .toml (with a [monument_ws] table) or .json file of settings.",
)
@click.option(
    "--debug",
    cls=GroupedOption,
    group="operations",
    is_flag=True,
    help="Show the traceback when the server cannot start.",
)
@config_options
def run(
    app: str | None,
    host: str,
    port: int,
    workers: int,
    config_file: str | None,
    debug: bool,
    **flags: str | None,
) -> None:
    """Serve MODULE:FACTORY, or without it the plugs folder here, or else the demo app.

    Without MODULE:FACTORY, run serves the folder --plugs names, or ./plugs when it
    exists, as a plain app (the plugin and those plugs, no pages or routes), and
    else the demo app with its own plugs. A relative --plugs is relative to the
    current directory, also for a FACTORY.

    FACTORY is a function returning an aiohttp Application; one with a ``config``
    parameter receives the Config built from the file, the environment and these
    flags (sockets on unless --websocket false). APP is an Application the module
    built at import (``monument-ws run example:app``): it keeps its own setup()
    settings, and only --host, --port, --certfile, --keyfile and --log-format
    apply to it.
    """
    cfg = build_config(flags, config_file, os.environ)
    tls = tls_context(cfg)  # checked here, once, so a bad file is a usage error, not a traceback
    logs.configure(cfg.log_format)
    if workers > 1 and cfg.broker.startswith("memory"):
        raise click.UsageError(
            "--workers needs a shared broker: memory:// lives inside one process, so workers "
            "would not see each other's channels, presence or clients; use --broker redis://..."
        )
    ignored = given_settings(flags, config_file, os.environ)
    plugs_given = (
        flags.get("plugs") is not None
        or "plugs" in config_module.from_env(os.environ)
        or cfg.plugs != DEFAULT_PLUGS
    )
    app, cfg = choose_app(app, cfg, plugs_given)
    try:
        require_extras(cfg)
        application = load_app(app, cfg, ignored)  # with workers: fails here, once, not in each
        # Bound (or, for workers, probed) first: a busy port fails in one line before the app's
        # start-up hooks run, and before any worker starts (each would print its own traceback).
        if workers == 1:
            listener = listen(host, port, cfg.max_connections_per_ip, reuse_port=False)

            def listening(_aiohttp_message: str) -> None:
                announce(
                    describe(application, app),
                    host,
                    port,
                    tls=tls is not None,
                    workers=1,
                    log_format=cfg.log_format,
                )

            web.run_app(
                application,
                sock=listener,
                keepalive_timeout=cfg.header_timeout,
                print=listening,
                ssl_context=tls,
            )
        else:
            probe_port(host, port, reuse_port=True)
    except MissingExtra as exc:  # also raised by the app's own settings, e.g. metrics=True
        if debug:
            raise
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        if debug:
            raise
        raise click.ClickException(cannot_listen(host, port, exc)) from None
    if workers > 1:
        serve_workers(app, cfg if cfg.secret else shared_secret(cfg, workers), host, port, workers)


def shared_secret(cfg: Config, workers: int) -> Config:
    """``cfg`` with a random ``secret`` for the workers ``run`` starts itself, so a client resumes
    its client id on any of them (each would otherwise pick its own key). Logged, never shown."""
    logging.getLogger("monument_ws").warning(
        "no secret set: generated one resume secret shared by the %d workers; clients keep "
        "their client id across workers but not across restarts of run (set --secret for that, "
        "and the same secret on every other process sharing the broker)",
        workers,
    )
    return cfg.replace(secret=secrets.token_urlsafe(32))
