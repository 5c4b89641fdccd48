"""The vimax-nb client: talks to the server extension over its WebSocket and REST."""

from .connection import Connection

__all__ = ["Connection"]
