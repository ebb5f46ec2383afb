"""``run --workers N``: N spawned processes serving one port through SO_REUSEPORT."""

from __future__ import annotations

import multiprocessing
import os
import signal

import click
from aiohttp import web

from ..config import Config
from ..server import logs
from .connections import listen
from .listening import tls_context
from .loading import load_app


def _worker(target: str, cfg: Config, host: str, port: int) -> None:
    logs.configure(cfg.log_format)  # a spawned process starts with no logging set up
    # SSLContext does not pickle: each spawned worker loads the files itself.
    web.run_app(
        load_app(target, cfg),
        sock=listen(host, port, cfg.max_connections_per_ip, reuse_port=True),
        keepalive_timeout=cfg.header_timeout,
        print=None,
        ssl_context=tls_context(cfg),
    )


def serve_workers(target: str, cfg: Config, host: str, port: int, workers: int) -> None:
    """Run ``workers`` processes on one port; SIGTERM/SIGINT stop them all gracefully."""
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
