"""Noticing that a client went away (the ASGI ``http.disconnect`` message)."""

from __future__ import annotations

from starlette.types import Receive


async def disconnected(receive: Receive) -> None:
    """Return once the client has gone away."""
    while (await receive())["type"] != "http.disconnect":
        pass
