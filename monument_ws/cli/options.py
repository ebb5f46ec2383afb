"""What the commands share: click's settings, ``--project``, and the Config of ``run``.

Every configuration key of :class:`~monument_ws.config.Config` is also a flag
of ``run`` (``--data-timeout 5``; a boolean key works bare too: ``--reload``), and so
is each of its aliases (``--dataTimeout 5``).
Precedence, later wins: the schema's defaults < :data:`RUN_DEFAULTS` <
``--config FILE`` < the environment (``MONUMENT_WS_*``) < flags. ``run -h`` lists
the flags under the headings of :data:`~monument_ws.config.GROUPS`, each flag's
value named by its key's ``metavar`` (:class:`GroupedCommand`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
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


class GroupedOption(click.Option):
    """An option listed under the heading ``group`` (a key of :data:`config.GROUPS`)."""

    def __init__(self, *args: Any, group: str, **kwargs: Any) -> None:
        if group not in config_module.GROUPS:
            raise ValueError(f"unknown help group {group!r}")
        super().__init__(*args, **kwargs)
        self.group = group


class GroupedCommand(click.Command):
    """A command whose help lists its :class:`GroupedOption` s under their groups' headings,
    in the order of :data:`config.GROUPS`; other options (``-h``) come last, under Options."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {group: [] for group in config_module.GROUPS}
        rest: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None or isinstance(param, click.Argument):
                continue
            (sections[param.group] if isinstance(param, GroupedOption) else rest).append(record)
        for group, records in sections.items():
            if records:
                with formatter.section(config_module.GROUPS[group]):
                    formatter.write_dl(records)
        if rest:
            with formatter.section("Options"):
                formatter.write_dl(rest)


def alias_flags(info: config_module.OptionInfo) -> list[str]:
    """The other spellings of ``info``'s flag: one per alias (``--payloadLimit`` for
    ``max_message_size``). Deprecated names are not flags: a flag cannot log their warning."""
    return [f"--{alias}" for alias in info.aliases if f"--{alias}" != info.flag]


def config_options(fn: Any) -> Any:
    """Add one ``--flag`` per schema key, under its group, with the key's documentation as help;
    its aliases are other spellings of the same option, shown on its help line."""
    for info in reversed(config_module.schema()):
        default = RUN_DEFAULTS.get(info.name, info.default)
        shown = ",".join(default) if isinstance(default, tuple) else default
        boolean = info.type == "bool"
        fn = click.option(
            info.flag,
            *alias_flags(info),
            info.name,
            cls=GroupedOption,
            group=info.group,
            default=None,
            metavar=f"[{info.metavar}]" if boolean else info.metavar,
            # A boolean key also works as a bare flag: --reload means --reload true.
            is_flag=False,
            flag_value="true" if boolean else None,
            multiple=info.repeatable,
            help=f"{info.doc} [default: {shown!r}; env: {info.env_var}]",
        )(fn)
    return fn


def build_config(
    flags: Mapping[str, str | tuple[str, ...] | None],
    config_file: str | None,
    env: dict[str, str] | os._Environ[str],
) -> Config:
    """The Config ``run`` serves with: its defaults < ``config_file`` < ``env`` < ``flags``."""
    given = {name: value for name, value in flags.items() if value not in (None, ())}
    try:
        return Config.load(given, defaults=RUN_DEFAULTS, file=config_file, env=env)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def given_settings(
    flags: Mapping[str, str | tuple[str, ...] | None],
    config_file: str | None,
    env: dict[str, str] | os._Environ[str],
) -> list[str]:
    """The settings given to ``run`` (flags, environment, config file) that only reach an
    application through its factory, as the user spelled them."""
    given = [
        info.flag
        for info in config_module.schema()
        if flags.get(info.name) not in (None, ()) and info.name not in RUN_OWN_SETTINGS
    ]
    given += sorted(
        config_module.ENV_PREFIX + name.upper()
        for name in config_module.from_env(env)
        if name not in RUN_OWN_SETTINGS
    )
    if config_file:
        given.append(f"--config {config_file}")
    return given
