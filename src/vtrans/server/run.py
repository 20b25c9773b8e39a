"""Run the service on uvicorn (httptools and uvloop when installed, as ``uvicorn[standard]`` does),
in one process or in ``workers`` processes sharing one port and one store."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import resource
import shutil
import socket
import tempfile
from typing import Any

import msgspec
import uvicorn
from starlette.types import ASGIApp
from uvicorn.logging import DefaultFormatter
from uvicorn.supervisors import Multiprocess

from vtrans.server.config import ServerConfig
from vtrans.server.http import create_app
from vtrans.server.http.protocol import GuardedProtocol
from vtrans.server.logs import JSONFormatter, uvicorn_log_config
from vtrans.server.metrics import MULTIPROC_ENV
from vtrans.server.stores import StoreError, make_store

log = logging.getLogger(__name__)

#: The longest a shutdown waits for requests in flight before it cancels them.
DRAIN_SECONDS = 5
#: How a ``--workers`` parent hands the configuration to its worker processes.
CONFIG_ENV = "VTRANS_SERVER_CONFIG_JSON"


class StartupError(RuntimeError):
    """The service cannot start; the message says why in one line."""


def serve(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Serve until SIGINT or SIGTERM, then drain and stop; after a SIGINT, raise ``KeyboardInterrupt``
    once drained (uvicorn re-raises the signal; the parent of ``workers`` processes does the same).
    Raises :class:`StartupError` when the store cannot be used or the port cannot be listened on.
    Requests are logged by the app (the config's ``access_log``), not by uvicorn."""
    _log_to_stderr(log_level, config.log_format)
    _raise_open_files_limit()
    store = make_store(config.store, config.db_path)
    if workers > 1 and not store.shared:
        raise StartupError(
            f"--workers {workers} needs a store that several processes share (--store postgresql://…); "
            f"the {config.store} store is served by one process"
        )
    try:
        asyncio.run(_check(store))
    except StoreError as exc:
        raise StartupError(str(exc)) from None
    sock = _listen(host, port)
    config = dataclasses.replace(config, listen=(host, sock.getsockname()[1]))
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "vtrans serving on http://%s:%d with %d process%s, store: %s (Ctrl-C to stop)",
        shown,
        sock.getsockname()[1],
        workers,
        "" if workers == 1 else "es",
        store.name,
    )
    GuardedProtocol.limits = config.connections
    options: dict[str, Any] = {
        "access_log": False,
        "log_level": log_level,
        "log_config": uvicorn_log_config(config.log_format, log_level) or uvicorn.config.LOGGING_CONFIG,
        "backlog": 4096,
        "http": GuardedProtocol,
        "timeout_keep_alive": config.connections.keep_alive_timeout,
        "proxy_headers": False,
        # Held waits are answered as the shutdown begins: this bounds what is left in flight.
        "timeout_graceful_shutdown": DRAIN_SECONDS,
    }
    if workers == 1:
        uvicorn.Server(uvicorn.Config(create_app(config), **options)).run(sockets=[sock])
        return
    os.environ[CONFIG_ENV] = msgspec.json.encode(config).decode()
    app = f"{__name__}:app_from_environment"
    # The workers' metrics: one file per worker in a directory of this run; /metrics sums them.
    metrics_dir = None
    if config.metrics and MULTIPROC_ENV not in os.environ:
        metrics_dir = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="vtrans-metrics-")
    try:
        supervisor = _Supervisor(uvicorn.Config(app, factory=True, workers=workers, **options), [sock])
        supervisor.run()
        if supervisor.interrupted:
            raise KeyboardInterrupt
    finally:
        if metrics_dir is not None:
            del os.environ[MULTIPROC_ENV]
            shutil.rmtree(metrics_dir, ignore_errors=True)


class _Supervisor(Multiprocess):
    """uvicorn's parent of the worker processes, remembering whether a SIGINT stopped them."""

    interrupted = False

    def handle_int(self) -> None:
        self.interrupted = True
        super().handle_int()


def app_from_environment() -> ASGIApp:
    """The app of a worker process, configured by its parent (see :data:`CONFIG_ENV`)."""
    config = msgspec.json.decode(os.environ[CONFIG_ENV], type=ServerConfig)
    GuardedProtocol.limits = config.connections
    level = logging.getLevelName(logging.getLogger("uvicorn.error").getEffectiveLevel()).lower()
    _log_to_stderr(level, config.log_format)
    return create_app(config)


async def _check(store: Any) -> None:
    """Open and close the store once: a store that cannot be used fails here, in one line, and the
    schema exists before any worker starts."""
    await store.open()
    await store.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _log_to_stderr(level: str, log_format: str = "text") -> None:
    service_log = logging.getLogger("vtrans")
    if not service_log.handlers:
        handler = logging.StreamHandler()
        text = DefaultFormatter("%(levelprefix)s %(message)s")
        handler.setFormatter(JSONFormatter() if log_format == "json" else text)
        service_log.addHandler(handler)
    service_log.setLevel(level.upper())


def _raise_open_files_limit() -> None:
    """Allow as many connections as the system lets this process have (waiting clients hold one
    each); the usual soft limit of 1024 would refuse the thousand-and-first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            log.warning("could not raise the open-files limit from %d", soft)
