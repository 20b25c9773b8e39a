"""Run the service on uvicorn (httptools and uvloop when installed, as ``uvicorn[standard]`` does)."""

from __future__ import annotations

import logging
import resource

import uvicorn
from uvicorn.logging import DefaultFormatter

from vtrans.server.app import create_app
from vtrans.server.config import ServerConfig


def serve(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    access_log: bool = False,
    log_level: str = "info",
) -> None:
    """Serve until interrupted (SIGINT or SIGTERM)."""
    _raise_open_files_limit()
    handler = logging.StreamHandler()
    handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s"))
    service_log = logging.getLogger("vtrans")
    service_log.addHandler(handler)
    service_log.setLevel(log_level.upper())
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        access_log=access_log,
        log_level=log_level,
        backlog=4096,
        timeout_graceful_shutdown=2,
    )


def _raise_open_files_limit() -> None:
    """Allow as many connections as the system lets this process have (waiting clients hold one
    each); the usual soft limit of 1024 would refuse the thousand-and-first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            logging.getLogger(__name__).warning("could not raise the open-files limit from %d", soft)
