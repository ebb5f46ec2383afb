"""``monument-ws publish``: one event into a channel through the broker, with no server."""

from __future__ import annotations

import asyncio
import json
import os

import click

from ..config import Config
from ..protocol.errors import ConfigError, MonumentWSError
from ..server.publisher import Publisher
from .options import CONTEXT


@click.command(context_settings=CONTEXT, short_help="Publish one event to a channel.")
@click.argument("channel")
@click.argument("event")
@click.argument("data", default="null")
@click.option("--broker", help="The servers' broker URL (default: MONUMENT_WS_BROKER).")
@click.option(
    "--broker-prefix", help="The servers' key prefix (default: MONUMENT_WS_BROKER_PREFIX)."
)
@click.option(
    "--exclude",
    metavar="CLIENT_ID",
    help="Leave out every socket of this client id, live and in its recovery.",
)
def publish(
    channel: str,
    event: str,
    data: str,
    broker: str | None,
    broker_prefix: str | None,
    exclude: str | None,
) -> None:
    """Publish EVENT with DATA (JSON) to CHANNEL through the broker, without running a server."""
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise click.UsageError(f"DATA must be JSON: {exc}") from None
    given = {"broker": broker, "broker_prefix": broker_prefix}
    try:
        cfg = Config.load({k: v for k, v in given.items() if v is not None}, env=os.environ)
        publisher = Publisher(
            **{
                k: v
                for k, v in cfg.as_dict().items()
                if k in ("broker", "broker_prefix", "channels")
            }
        )
    except (ConfigError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None

    async def send() -> int:
        async with publisher:
            return await publisher.publish(channel, event, payload, exclude=exclude)

    try:
        offset = asyncio.run(send())
    except MonumentWSError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"published to {channel} at offset {offset}")
