"""Stand-alone HTTP servers the integration tests run as processes."""

from __future__ import annotations

import asyncio
import signal


async def serve_until_signalled(server: asyncio.Server) -> None:
    """Serve until SIGTERM or SIGINT, then close."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
