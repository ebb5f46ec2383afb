"""What the commands share: click's settings, ``--project``, and the Config of ``run``.

Every configuration key of :class:`~monument_ws.config.Config` is also a flag
of ``run`` (``--data-timeout 5``; a boolean key works bare too: ``--reload``).
Precedence, later wins: the schema's defaults < :data:`RUN_DEFAULTS` <
``--config FILE`` < the environment (``MONUMENT_WS_*``) < flags.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import config as config_module
from ..config import Config
from ..protocol.errors import ConfigError

#: What ``run`` changes from the schema's defaults: it serves sockets.
RUN_DEFAULTS = {"websocket": True}
#: The settings ``run`` uses itself, so they apply to an application built at import too.
RUN_OWN_SETTINGS = ("certfile", "keyfile", "log_format")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def project_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--project DIR``: the existing directory a scaffolding command writes into."""
    return click.option(
        "--project",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        default=".",
        help=help_text,
    )


def config_options(fn: Any) -> Any:
    """Add one ``--flag`` per schema key, with the key's documentation as help."""
    for info in reversed(config_module.schema()):
        default = RUN_DEFAULTS.get(info.name, info.default)
        shown = ",".join(default) if isinstance(default, tuple) else default
        boolean = info.type == "bool"
        fn = click.option(
            info.flag,
            info.name,
            default=None,
            metavar="[BOOL]" if boolean else "VALUE",
            # A boolean key also works as a bare flag: --reload means --reload true.
            is_flag=False,
            flag_value="true" if boolean else None,
            help=f"{info.doc} [default: {shown!r}; env: {info.env_var}]",
        )(fn)
    return fn


def build_config(
    flags: dict[str, str | None], config_file: str | None, env: dict[str, str] | os._Environ[str]
) -> Config:
    """The Config ``run`` serves with: its defaults < ``config_file`` < ``env`` < ``flags``."""
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return Config.load(given, defaults=RUN_DEFAULTS, file=config_file, env=env)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def given_settings(
    flags: dict[str, str | None], config_file: str | None, env: dict[str, str] | os._Environ[str]
) -> list[str]:
    """The settings given to ``run`` (flags, environment, config file) that only reach an
    application through its factory, as the user spelled them."""
    given = [
        info.flag
        for info in config_module.schema()
        if flags.get(info.name) is not None and info.name not in RUN_OWN_SETTINGS
    ]
    given += sorted(
        config_module.ENV_PREFIX + name.upper()
        for name in config_module.from_env(env)
        if name not in RUN_OWN_SETTINGS
    )
    if config_file:
        given.append(f"--config {config_file}")
    return given
