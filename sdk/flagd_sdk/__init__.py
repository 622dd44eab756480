"""flagd_sdk: the thin Python SDK for flagd."""

__version__ = "0.1.0"
