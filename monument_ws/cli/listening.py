"""The address ``run`` listens on: probing it first, saying why it failed, and TLS."""

from __future__ import annotations

import errno
import socket
import ssl

import click

from ..config import Config


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
