"""The HTTP face of the service: routes, the ASGI app, problems, event streams, OpenAPI."""

from vtrans.server.http.app import App, create_app

__all__ = ["App", "create_app"]
