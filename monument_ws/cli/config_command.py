"""``monument-ws config``: list the configuration keys, or explain one and where its value
comes from here."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from .. import config as config_module
from ..protocol.errors import ConfigError
from .options import CONTEXT, RUN_DEFAULTS, alias_flags, build_config


def _shown(value: Any) -> str:
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        value = list(value)
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


@click.command("config", context_settings=CONTEXT, short_help="Explain a setting, or list them.")
@click.argument("key", required=False)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="The settings file `run --config` would read, to show the value it gives.",
)
def config_command(key: str | None, config_file: str | None) -> None:
    """Explain the configuration KEY (name, alias or --flag), or list every key.

    Shows its meaning, type, default, spellings, and the value `run` would use
    here with the current environment (and --config FILE), with where it comes from.
    """
    if key is None:
        for info in config_module.schema():
            click.echo(f"{info.name:22} {info.doc.split('. ')[0].rstrip('.')}")
        click.echo("\nmonument-ws config KEY explains one key.")
        return
    try:
        info = config_module.option_info(key)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    effective = getattr(build_config({}, config_file, os.environ), info.name)
    if info.env_var in os.environ:
        source = f"environment ({info.env_var})"
    elif config_file is not None and effective != getattr(build_config({}, None, {}), info.name):
        source = f"config file ({config_file})"
    elif info.name in RUN_DEFAULTS:
        source = "run's default"
    else:
        source = "default"
    click.echo(f"{info.name} ({info.type})")
    click.echo("")
    click.echo(click.wrap_text(info.doc, width=88, initial_indent="  ", subsequent_indent="  "))
    click.echo("")
    click.echo(f"  default:     {_shown(RUN_DEFAULTS.get(info.name, info.default))}")
    click.echo(f"  value here:  {_shown(effective)}  [{source}]")
    click.echo(f"  flag:        monument-ws run {info.flag} {info.metavar}")
    click.echo(f"  environment: {info.env_var}={info.metavar}")
    click.echo(f"  config file: {info.name} = {info.metavar}  (under [monument_ws] in TOML)")
    if info.aliases:
        flags = ", ".join(alias_flags(info))
        click.echo(f"  aliases:     {', '.join(info.aliases)}  (flags too: {flags})")
    click.echo("  precedence:  default < config file < environment < flag")
