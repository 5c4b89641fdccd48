"""vimax-nb: launch and watch agentic video-generation workflows from Jupyter."""

from ._version import __version__

__all__ = ["__version__"]
