"""The ``monument-ws`` command: run an app, scaffold a new one, add data providers and plugs.

Every configuration key of :class:`~monument_ws.config.Config` is also a flag
of ``run`` (``--data-timeout 5``; a boolean key works bare too: ``--reload``),
documented in ``monument-ws run -h`` and, one key at a time, by
``monument-ws config KEY``. Precedence, later wins: the schema's defaults <
``run``'s defaults (``websocket`` true) < ``--config FILE`` < the environment
(``MONUMENT_WS_*``) < flags.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import json
import keyword
import os
import re
import shutil
import socket
import ssl
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import click
from aiohttp import web

from .. import config as config_module
from .._version import __version__
from ..config import Config
from ..protocol.errors import ConfigError, MonumentWSError
from ..server import logs

DEFAULT_APP = "monument_ws.app_template.app:create_app"
#: What ``run`` changes from the schema's defaults: it serves sockets.
RUN_DEFAULTS = {"websocket": True}
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def project_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--project DIR``: the existing directory a scaffolding command writes into."""
    return click.option(
        "--project",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        default=".",
        help=help_text,
    )


def _config_options(fn: Any) -> Any:
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


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="monument-ws")
def cli() -> None:
    """monument_ws: real-time WebSockets for aiohttp, bridged to the app's event bus."""


@cli.command(context_settings=CONTEXT)
@click.argument("app", required=False, default=DEFAULT_APP, metavar="[MODULE:FACTORY]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="TCP port.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Processes serving the same port (SO_REUSEPORT); needs a shared broker such as redis://.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="A .toml (with a [monument_ws] table) or .json file of settings.",
)
@click.option("--debug", is_flag=True, help="Show the traceback when the server cannot start.")
@_config_options
def run(
    app: str,
    host: str,
    port: int,
    workers: int,
    config_file: str | None,
    debug: bool,
    **flags: str | None,
) -> None:
    """Serve MODULE:FACTORY (default: the demo app) in one process.

    FACTORY is an aiohttp Application, or a function returning one; a function
    with a ``config`` parameter receives the Config built from the file, the
    environment and these flags (sockets on unless --websocket false).
    """
    cfg = build_config(flags, config_file, os.environ)
    tls = tls_context(cfg)  # checked here, once, so a bad file is a usage error, not a traceback
    logs.configure(cfg.log_format)
    if workers > 1 and cfg.broker.startswith("memory"):
        raise click.UsageError(
            "--workers needs a shared broker: memory:// lives inside one process, so workers "
            "would not see each other's channels, presence or clients; use --broker redis://..."
        )
    application = load_app(app, cfg)  # with workers: fails here, once, not in every worker
    try:
        # Probed first: a busy port fails in one line before the app's start-up hooks run,
        # and before any worker starts (each would print its own traceback).
        probe_port(host, port, reuse_port=workers > 1)
        if workers == 1:
            web.run_app(application, host=host, port=port, print=click.echo, ssl_context=tls)
    except OSError as exc:
        if debug:
            raise
        raise click.ClickException(cannot_listen(host, port, exc)) from None
    if workers > 1:
        serve_workers(app, cfg, host, port, workers)


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    """One line saying why the server could not listen on ``host:port``."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        reason = "the address is already in use (another server on that port?); try --port"
    return f"cannot listen on {host}:{port}: {reason}"


def probe_port(host: str, port: int, *, reuse_port: bool) -> None:
    """Raise the OSError that binding ``host:port`` as the server will (SO_REUSEADDR, and
    SO_REUSEPORT for workers) gives; nothing stays bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        probe.bind((host, port))


def tls_context(cfg: Config) -> ssl.SSLContext | None:
    """The server's TLS context from ``certfile``/``keyfile`` (None: plain TCP).

    Raises click.UsageError naming the file when it cannot be loaded.
    """
    if not cfg.certfile:
        if cfg.keyfile:
            raise click.UsageError("--keyfile needs --certfile (the certificate it belongs to)")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cfg.certfile, cfg.keyfile or None)
    except (OSError, ssl.SSLError) as exc:
        raise click.UsageError(
            f"cannot load the TLS certificate {cfg.certfile!r}"
            f"{f' with key {cfg.keyfile!r}' if cfg.keyfile else ''}: {exc}"
        ) from None
    return context


def _worker(target: str, cfg: Config, host: str, port: int) -> None:
    logs.configure(cfg.log_format)  # a spawned process starts with no logging set up
    # SSLContext does not pickle: each spawned worker loads the files itself.
    web.run_app(
        load_app(target, cfg),
        host=host,
        port=port,
        reuse_port=True,
        print=None,
        ssl_context=tls_context(cfg),
    )


def serve_workers(target: str, cfg: Config, host: str, port: int, workers: int) -> None:
    """Run ``workers`` processes on one port; SIGTERM/SIGINT stop them all gracefully."""
    import multiprocessing
    import signal

    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker, args=(target, cfg, host, port)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    scheme = "https" if cfg.certfile else "http"
    click.echo(f"======== Running {workers} workers on {scheme}://{host}:{port} ========")

    def stop(signum: int, frame: object) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.join()


def load_app(target: str, cfg: Config) -> web.Application:
    """Import ``module:factory`` (the current directory is importable) and build the app."""
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


@cli.command(context_settings=CONTEXT)
@click.argument("channel")
@click.argument("event")
@click.argument("data", default="null")
@click.option("--broker", help="The servers' broker URL (default: MONUMENT_WS_BROKER).")
@click.option(
    "--broker-prefix", help="The servers' key prefix (default: MONUMENT_WS_BROKER_PREFIX)."
)
def publish(
    channel: str, event: str, data: str, broker: str | None, broker_prefix: str | None
) -> None:
    """Publish EVENT with DATA (JSON) to CHANNEL through the broker, without running a server."""
    import asyncio
    import json

    from ..server.publisher import Publisher

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
            return await publisher.publish(channel, event, payload)

    try:
        offset = asyncio.run(send())
    except MonumentWSError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"published to {channel} at offset {offset}")


@cli.command(context_settings=CONTEXT)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def new(directory: Path) -> None:
    """Create a new app in DIRECTORY (created if missing; it must be empty)."""
    if directory.exists() and any(directory.iterdir()):
        raise click.ClickException(f"{directory} is not empty; choose a new or empty directory")
    template = resources.files("monument_ws") / "app_template"
    with resources.as_file(template) as source:
        shutil.copytree(
            source,
            directory,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"),
        )
    (directory / "__init__.py").unlink()
    click.echo(f"created {directory}")
    click.echo(f"  cd {directory} && monument-ws run app:create_app   # serve it")
    click.echo(f"  cd {directory} && python -m pytest                 # its tests")


DATA_MODULE = '''"""{name}: answers ``data:get:{name}`` (HTTP and sockets) with ``data:set:{name}``."""

from __future__ import annotations

from typing import Any

from monument_ws import events


@events.on("data:get:{name}")
async def provide(event: str, *, data: Any, **_: Any) -> Any:
    # Replace with your query. ``data`` is what the socket request carried.
    # Return the value, or emit "data:set:{name}" with request=request later.
    return {{"name": "{name}", "items": []}}
'''

DATA_TEST = '''"""data:get:{name} answers over HTTP and over a socket with the same value."""

from monument_ws.testing import Communicator

from app import create_app


async def test_{name}_over_http_and_socket():
    """GET /api/{name} and data:get:{name} are answered by the same provider."""
    async with Communicator(create_app()) as comm:
        assert await comm.call("data:get:{name}") == await comm.get("/api/{name}")
'''


@cli.command(context_settings=CONTEXT)
@click.argument("name")
@project_option("The app made by `monument-ws new` (default: the current directory).")
def data(name: str, project: Path) -> None:
    """Add a data provider NAME (data:get:NAME → data:set:NAME) with its test, wired in."""
    if not name.isidentifier() or keyword.iskeyword(name) or not name.islower():
        raise click.UsageError(f"{name!r} must be a lowercase Python identifier, e.g. weather")
    package = project / "app" / "data"
    registry = package / "__init__.py"
    if not registry.is_file():
        raise click.ClickException(
            f"{project} is not an app made by `monument-ws new` (no app/data/)"
        )
    module = package / f"{name}.py"
    if module.exists():
        raise click.ClickException(f"{module} already exists")
    text = registry.read_text()
    match = re.search(r"^__all__ = \[(.*)\]$", text, re.MULTILINE)
    if match is None:
        raise click.ClickException(f"cannot find the __all__ list in {registry}")
    names = [*re.findall(r'"(\w+)"', match.group(1)), name]
    imports = "".join(f"from . import {n}\n" for n in names)
    head = text[: text.index("from . import")]
    registry.write_text(
        f"{head}{imports}\n__all__ = [{', '.join(repr(n).replace(chr(39), chr(34)) for n in names)}]\n"
    )
    module.write_text(DATA_MODULE.format(name=name))
    test = project / "tests" / f"test_{name}.py"
    test.write_text(DATA_TEST.format(name=name))
    click.echo(f"created {module} and {test}; data:get:{name} is served at GET /api/{name}")


def _shown(value: Any) -> str:
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        value = list(value)
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


@cli.command("config", context_settings=CONTEXT)
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
    click.echo(f"  flag:        monument-ws run {info.flag} VALUE")
    click.echo(f"  environment: {info.env_var}=VALUE")
    click.echo(f"  config file: {info.name} = VALUE  (under [monument_ws] in TOML)")
    if info.aliases:
        click.echo(f"  aliases:     {', '.join(info.aliases)}")
    click.echo("  precedence:  default < config file < environment < flag")


PLUG_MODULE = '''"""The event "{event}": plugs/{event}.py answers it (the file is the event).

``handle(message, socket)`` runs for every request named "{event}":
``message.data`` is what the client sent, ``socket`` its connection. Each
``yield`` goes back to the client, in order, as a streamed reply; write a
plain ``async def`` that returns a value for a single reply instead. Typed
yields (broadcast to everyone, SYNC deltas, errors, custom_1..5) are in
``monument_ws.protocol.yields``. With ``monument-ws run --reload`` edits are live at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from monument_ws import Frame, Socket


async def handle(message: Frame, socket: Socket) -> AsyncIterator[Any]:
    yield {{"event": "{event}", "got": message.data}}
'''

PLUG_TEST = '''"""plugs/{event}.py answers the event "{event}" over a real socket."""

from pathlib import Path

from aiohttp import web

import monument_ws
from monument_ws.testing import Communicator

PLUGS = Path(__file__).resolve().parent.parent / "plugs"


def plugs_app() -> web.Application:
    app = web.Application()
    monument_ws.setup(app, websocket=True, plugs=str(PLUGS), bus=monument_ws.EventBus())
    return app


async def test_{ident}_answers():
    """The plug streams its answer to "{event}"."""
    async with Communicator(plugs_app()) as comm:
        replies = [reply async for reply in comm.stream("{event}", "hi")]
        assert replies == [{{"event": "{event}", "got": "hi"}}]
'''

_PLUG_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@cli.command(context_settings=CONTEXT)
@click.argument("name")
@project_option("The directory holding plugs/ and tests/ (default: the current directory).")
def generate(name: str, project: Path) -> None:
    """Write plugs/NAME.py answering the event NAME (chat/send: plugs/chat/send.py), and its test."""
    segments = name.split("/")
    if (
        len(name) > 200
        or not all(_PLUG_SEGMENT.fullmatch(segment) for segment in segments)
        or name == "INIT"
    ):
        raise click.UsageError(
            f"{name!r} is not a plug name: use letters, digits, _ and - in /-separated parts "
            "that start with a letter or digit, e.g. chat/send"
        )
    module = project / "plugs" / f"{name}.py"
    ident = re.sub(r"\W", "_", name)
    test = project / "tests" / f"test_plug_{ident}.py"
    for path in (module, test):
        if path.exists():
            raise click.ClickException(f"{path} already exists")
    module.parent.mkdir(parents=True, exist_ok=True)
    test.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(PLUG_MODULE.format(event=name))
    test.write_text(PLUG_TEST.format(event=name, ident=ident))
    click.echo(f"created {module} (the event {name!r}) and {test}")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point; tests call ``main([...])`` directly."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="monument-ws")
