"""The simulated video-translation service (install with ``pip install 'vtrans[server]'``)."""

from vtrans.server.app import create_app
from vtrans.server.config import ServerConfig
from vtrans.server.simulation import SimulationConfig

__all__ = ["ServerConfig", "SimulationConfig", "create_app"]
