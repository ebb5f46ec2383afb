"""The ``monument-ws`` command: run an app, scaffold a new one, add data providers and plugs.

One module per job: ``run_command`` (with ``loading`` the app, ``plugs_app`` the plain
app it serves for a plugs folder, ``listening`` its address and TLS, ``workers`` its
processes), ``publish_command``, ``config_command``, ``scaffold`` (``new``, ``data``,
``generate`` and their ``templates/``); ``options`` holds what they share. Every
configuration key, and each of its aliases, is also a flag of ``run``, documented in
``monument-ws run -h`` and, one key at a time, by ``monument-ws config KEY``.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from .._version import __version__
from .config_command import config_command
from .options import CONTEXT
from .publish_command import publish
from .run_command import run
from .scaffold import data, generate, new


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="monument-ws")
def cli() -> None:
    """monument_ws: real-time WebSockets for aiohttp, bridged to the app's event bus."""


for _command in (run, publish, new, data, config_command, generate):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point; tests call ``main([...])`` directly."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="monument-ws")
