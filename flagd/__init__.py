"""flagd: experimentation and feature-flag server."""

__version__ = "0.1.0"
