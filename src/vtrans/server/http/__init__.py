"""The HTTP face of the service: routes, the ASGI app, problems, event streams, OpenAPI."""

from vtrans.server.http.app import create_app

__all__ = ["create_app"]
