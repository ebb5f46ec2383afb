"""``run --workers N``: N spawned processes serving one port through SO_REUSEPORT."""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
from multiprocessing.queues import Queue

from aiohttp import web

from ..config import Config
from ..server import logs
from .banner import Summary, announce, describe
from .connections import listen
from .listening import tls_context
from .loading import load_app


def _worker(target: str, cfg: Config, host: str, port: int, reports: Queue[Summary]) -> None:
    logs.configure(cfg.log_format)  # a spawned process starts with no logging set up
    application = load_app(target, cfg)
    # SSLContext does not pickle: each spawned worker loads the files itself.
    web.run_app(
        application,
        sock=listen(host, port, cfg.max_connections_per_ip, reuse_port=True),
        keepalive_timeout=cfg.header_timeout,
        print=lambda _aiohttp_message: reports.put(describe(application, target)),
        ssl_context=tls_context(cfg),
    )


def serve_workers(target: str, cfg: Config, host: str, port: int, workers: int) -> None:
    """Run ``workers`` processes on one port; SIGTERM/SIGINT stop them all gracefully.

    The banner is printed once, when the first worker listens.
    """
    context = multiprocessing.get_context("spawn")
    reports: Queue[Summary] = context.Queue()
    processes = [
        context.Process(target=_worker, args=(target, cfg, host, port, reports))
        for _ in range(workers)
    ]

    def stop(signum: int, frame: object) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.start()
    while any(process.is_alive() for process in processes):
        try:
            summary = reports.get(timeout=0.2)
        except queue.Empty:
            continue
        tls = bool(cfg.certfile)
        announce(summary, host, port, tls=tls, workers=workers, log_format=cfg.log_format)
        break
    for process in processes:
        process.join()
