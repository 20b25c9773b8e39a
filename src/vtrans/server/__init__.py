"""The simulated video-translation service (install with ``pip install 'vtrans[server]'``).

Layers: :mod:`~vtrans.server.simulation` (pure) · :mod:`~vtrans.server.stores` (where jobs live) ·
:mod:`~vtrans.server.service` (the operations, no HTTP) · :mod:`~vtrans.server.http` (routes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vtrans.server.config import ServerConfig
from vtrans.server.simulation import SimulationConfig

if TYPE_CHECKING:
    from vtrans.server.http import create_app

__all__ = ["ServerConfig", "SimulationConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":  # imported on use: only the HTTP layer needs Starlette
        from vtrans.server.http import create_app

        return create_app
    raise AttributeError(name)
