"""flagd_sdk: the thin Python SDK for flagd.

    from flagd_sdk import Client
    client = Client("http://127.0.0.1:8080", sdk_key)
    if client.variant("checkout-redesign", user_id) == "on": ...
    client.track("purchase", user_id, value=42.0)

Importing this package starts nothing: a client starts its background work when it is created
(`Client`) or started (`AsyncClient`).
"""

from flagd_sdk.client import AsyncClient, Client
from flagd_sdk.options import ConfigurationError, Options

__version__ = "0.1.0"

__all__ = ["AsyncClient", "Client", "ConfigurationError", "Options", "__version__"]
