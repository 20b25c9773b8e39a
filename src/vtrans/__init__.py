"""vtrans: submit video translations and wait for them well, on any server."""

__version__ = "0.1.0"
