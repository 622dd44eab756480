"""Who is calling: the API key of a request, checked against the scope its endpoint needs.

Keys are looked up once and cached per worker, so an authenticated request costs a
dictionary lookup and one SHA-256, not a database round trip. Creating or revoking a
key notifies every worker (LISTEN/NOTIFY on `flagd_keys`), which then forgets its
cache; entries also expire after a minute in case a notification is missed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from flagd.auth.keys import Scope, matches, parse
from flagd.auth.repository import ApiKey, ApiKeyRepository
from flagd.errors import Forbidden, Unauthorized

ALLOWED_SCOPES: dict[Scope, frozenset[Scope]] = {
    Scope.SDK: frozenset({Scope.SDK, Scope.ADMIN}),
    Scope.RESULTS: frozenset({Scope.RESULTS, Scope.ADMIN}),
    Scope.ADMIN: frozenset({Scope.ADMIN}),
}
"""Which key scopes may call an endpoint that needs a given scope: admin keys reach everything."""

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flagd"'}
_HOW_TO = "send `Authorization: Bearer <key>` or `X-API-Key: <key>`; create a key with `flagd keys create`"


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: int
    name: str
    scope: Scope

    @property
    def actor(self) -> str:
        return f"api-key:{self.key_id}:{self.name}"


class Authenticator:
    def __init__(self, pool: asyncpg.Pool, *, ttl: float = 60.0, negative_ttl: float = 5.0) -> None:
        self._pool = pool
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    def forget(self) -> None:
        self._cache.clear()

    async def authenticate(self, request: Request, required: Scope) -> Principal:
        token = _token(request)
        if token is None:
            raise Unauthorized(f"this endpoint needs an API key: {_HOW_TO}", headers=_CHALLENGE)
        presented = parse(token)
        if presented is None:
            raise Unauthorized(
                "the API key is malformed: keys look like flagd_<10 hex digits>_<43 characters>",
                headers=_CHALLENGE,
            )
        key = await self._lookup(presented.prefix)
        if key is None or not matches(presented, key.secret_hash):
            raise Unauthorized("the API key is not valid", headers=_CHALLENGE)
        if key.revoked_at is not None:
            raise Unauthorized("the API key has been revoked; create a new one", headers=_CHALLENGE)
        if key.scope not in ALLOWED_SCOPES[required]:
            raise Forbidden(
                f"this endpoint needs a key with scope {required.value}; this key has scope {key.scope.value}"
            )
        return Principal(key_id=key.id, name=key.name, scope=key.scope)

    async def _lookup(self, prefix: str) -> ApiKey | None:
        now = time.monotonic()
        cached = self._cache.get(prefix)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._pool.acquire() as conn:
            key = await ApiKeyRepository(conn).by_prefix(prefix)
        if len(self._cache) > 10_000:  # bounded: unknown prefixes from a scan must not grow it forever
            self._cache.clear()
        self._cache[prefix] = (now + (self._ttl if key is not None else self._negative_ttl), key)
        return key


def _token(request: Request) -> str | None:
    headers = request.headers
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        return None
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key else None


Endpoint = Callable[[Request, Principal], Awaitable[Response]]


def requires(scope: Scope) -> Callable[[Endpoint], Callable[[Request], Awaitable[Response]]]:
    """Guard an endpoint: it runs only for a key that may use `scope`, and is handed its principal."""

    def guard(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            authenticator: Any = request.state.server.auth
            principal = await authenticator.authenticate(request, scope)
            return await endpoint(request, principal)

        guarded.__name__ = endpoint.__name__
        guarded.__doc__ = endpoint.__doc__
        return guarded

    return guard
