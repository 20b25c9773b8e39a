"""Run the service on uvicorn (httptools and uvloop when installed, as ``uvicorn[standard]`` does)."""

from __future__ import annotations

import logging

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
