"""flagd_sdk: the thin Python SDK for flagd.

    from flagd_sdk import Client
    client = Client("http://127.0.0.1:8080", sdk_key)
    if client.variant("checkout-redesign", user_id) == "on": ...
    client.track("purchase", user_id, value=42.0)

Importing this package starts nothing: a client starts its background work when it is created
(`Client`) or started (`AsyncClient`). The clients are imported on first use, so a program that needs
only `flagd_sdk.evaluation` (the server, its command line) does not load the HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flagd_sdk.client import AsyncClient, Client
    from flagd_sdk.options import ConfigurationError, Options

__version__ = "0.1.0"

__all__ = ["AsyncClient", "Client", "ConfigurationError", "Options", "__version__"]

_HOMES = {
    "AsyncClient": "flagd_sdk.client",
    "Client": "flagd_sdk.client",
    "ConfigurationError": "flagd_sdk.options",
    "Options": "flagd_sdk.options",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'flagd_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
