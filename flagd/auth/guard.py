"""Who is calling: the API key of a request, checked against the scope its endpoint needs.

Keys are looked up once and cached per worker, so an authenticated request costs a
dictionary lookup and one SHA-256, not a database round trip. Creating or revoking a
key notifies every worker (LISTEN/NOTIFY on `flagd_keys`), which then forgets its
cache; entries also expire after a minute in case a notification is missed.

A lookup that was in flight when the cache was forgotten may have read the key as it
was before the revocation; `_generation` counts the forgets, and a result is cached
only if no forget happened while it was read, so a revoked key is never brought back.
Open streams re-check their key (`still_valid`) every half second, which costs a
dictionary lookup until a revocation empties the cache.

Client keys (flagd.auth.client) reach only the endpoints that require the client scope, and there each
request is also admitted by origin and rate (`authenticate_scope`). A client key's change stream is opened
with a token in its URL instead of a header (flagd.auth.stream_tokens, `authenticate_stream`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope as AsgiScope

from flagd.auth import stream_tokens
from flagd.auth.client import ClientAccess, ClientPolicy
from flagd.auth.keys import Scope, matches, parse
from flagd.auth.repository import ApiKey, ApiKeyRepository
from flagd.errors import DatabaseUnavailable, Forbidden, Unauthorized
from flagd.storage.pool import DATABASE_UNAVAILABLE_ERRORS

ALLOWED_SCOPES: dict[Scope, frozenset[Scope]] = {
    Scope.CLIENT: frozenset({Scope.CLIENT, Scope.SDK, Scope.ADMIN}),
    Scope.SDK: frozenset({Scope.SDK, Scope.ADMIN}),
    Scope.RESULTS: frozenset({Scope.RESULTS, Scope.ADMIN}),
    Scope.ADMIN: frozenset({Scope.ADMIN}),
}
"""Which key scopes may call an endpoint that needs a given scope: admin keys reach everything, client keys only
the endpoints that need the client scope (OFREP evaluation, POST /v1/events, the client change stream)."""

_LOOKUP_ERRORS: tuple[type[Exception], ...] = (DatabaseUnavailable, *DATABASE_UNAVAILABLE_ERRORS)
UNREACHABLE_SECONDS = 0.5
"""After a failed lookup, how long other lookups fail at once rather than trying again."""

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flagd"'}
_HOW_TO = "send `Authorization: Bearer <key>` or `X-API-Key: <key>`; create a key with `flagd keys create`"


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: int
    name: str
    scope: Scope
    server_exposures: bool = True
    origins: tuple[str, ...] = ()
    """A client key's own allowed origins."""
    prefix: str = ""
    token_key: bytes = field(default=b"", repr=False)
    """What the key's stream tokens are signed with (its stored secret hash; flagd.auth.stream_tokens)."""

    def stream_token(self, now: float) -> str:
        return stream_tokens.issue(self.prefix, self.key_id, self.token_key, now)

    @property
    def actor(self) -> str:
        return f"api-key:{self.key_id}:{self.name}"


class Authenticator:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl: float = 60.0,
        negative_ttl: float = 5.0,
        client: ClientAccess | None = None,
    ) -> None:
        self._pool = pool
        self.client = client if client is not None else ClientAccess(pool, ClientPolicy())
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        # Tokens already checked (against their hash, in constant time), so a busy client's
        # requests cost one dictionary lookup. Cleared with the key cache.
        self._verified: dict[str, tuple[float, Principal]] = {}
        self._generation = 0
        self._unreachable_until = 0.0

    def forget(self) -> None:
        self._generation += 1
        self._cache.clear()
        self._verified.clear()
        self.client.keys_changed()

    async def still_valid(self, token: str | None, required: Scope) -> bool:
        """Whether a token that was accepted earlier is still accepted (for long-lived streams)."""
        try:
            await self.authenticate_token(token, required)
        except (Unauthorized, Forbidden):
            return False
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return True  # the database cannot say right now; the stream goes on and asks again
        return True

    async def authenticate(self, request: Request, required: Scope) -> Principal:
        return await self.authenticate_scope(request.scope, required)

    async def authenticate_scope(self, scope: AsgiScope, required: Scope) -> Principal:
        """The caller of an ASGI request; a client key's request also admitted by origin and rate."""
        principal = await self.authenticate_token(credentials(scope["headers"]), required)
        if principal.scope is Scope.CLIENT:
            self.client.admit(principal.key_id, principal.origins, scope)
        return principal

    async def authenticate_stream(self, token: str | None, *, at_connect: bool = True) -> Principal:
        """The client key of a change-stream token (`?token=`): 401 when it is missing, not genuine, of a
        revoked key, or (when a stream connects; an open stream goes on) older than its window and the next."""
        if not token:
            raise Unauthorized(
                "this stream needs the token in the URL that the bulk evaluation's eventStreams gives "
                "(POST /ofrep/v1/evaluate/flags with a client key)",
                headers=_CHALLENGE,
            )
        presented = stream_tokens.parse(token)
        key = await self._lookup(presented.prefix) if presented is not None else None
        if (
            presented is None
            or key is None
            or key.scope is not Scope.CLIENT
            or not stream_tokens.genuine(presented, key.id, key.secret_hash)
        ):
            raise Unauthorized(
                "the stream token is not valid; use the eventStreams URL of a fresh bulk evaluation",
                headers=_CHALLENGE,
            )
        if key.revoked_at is not None:
            raise Unauthorized("the client key of this stream has been revoked", headers=_CHALLENGE)
        if at_connect and not stream_tokens.current(presented, time.time()):
            raise Unauthorized(
                "the stream token has expired; evaluate the flags again (POST /ofrep/v1/evaluate/flags) for "
                "the stream's current URL",
                headers=_CHALLENGE,
            )
        return _principal(key)

    async def stream_still_valid(self, token: str) -> bool:
        """Whether an open client stream's key is still valid (its token's age no longer matters)."""
        try:
            await self.authenticate_stream(token, at_connect=False)
        except Unauthorized:
            return False
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, DatabaseUnavailable):
            return True  # the database cannot say right now; the stream goes on and asks again
        return True

    async def authenticate_token(self, token: str | None, required: Scope) -> Principal:
        if token is not None:
            verified = self._verified.get(token)
            if verified is not None and verified[0] > time.monotonic():
                principal = verified[1]
                if principal.scope in ALLOWED_SCOPES[required]:
                    return principal
        principal = await self._check(token)
        if principal.scope not in ALLOWED_SCOPES[required]:
            hint = (
                " (client keys reach only OFREP evaluation, POST /v1/events and the client change stream)"
                if principal.scope is Scope.CLIENT
                else ""
            )
            raise Forbidden(
                f"this endpoint needs a key with scope {required.value}; this key has scope "
                f"{principal.scope.value}{hint}"
            )
        return principal

    async def _check(self, token: str | None) -> Principal:
        if token is None:
            raise Unauthorized(f"this endpoint needs an API key: {_HOW_TO}", headers=_CHALLENGE)
        presented = parse(token)
        generation = self._generation
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
        principal = _principal(key)
        if generation != self._generation:
            return principal  # read before a revocation was announced: good for this request only
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[token] = (time.monotonic() + self._ttl, principal)
        return principal

    async def _lookup(self, prefix: str) -> ApiKey | None:
        now = time.monotonic()
        cached = self._cache.get(prefix)
        if cached is not None and cached[0] > now:
            return cached[1]
        generation = self._generation
        try:
            if now < self._unreachable_until:
                raise DatabaseUnavailable("the database is not reachable right now; retry shortly")
            key = await self._read(prefix)
        except _LOOKUP_ERRORS as exc:
            # While the database cannot be asked, a key it confirmed before stays good (nothing can
            # revoke it meanwhile), and other lookups fail at once for a moment instead of each
            # opening a connection that cannot succeed.
            self._unreachable_until = time.monotonic() + UNREACHABLE_SECONDS
            if cached is not None and cached[1] is not None:
                return cached[1]
            if isinstance(exc, DatabaseUnavailable):
                raise
            raise DatabaseUnavailable("the database is not reachable right now; retry shortly") from exc
        if generation != self._generation:
            return key
        if len(self._cache) > 10_000:  # bounded: unknown prefixes from a scan must not grow it forever
            self._cache.clear()
        self._cache[prefix] = (now + (self._ttl if key is not None else self._negative_ttl), key)
        return key

    async def _read(self, prefix: str) -> ApiKey | None:
        async with self._pool.acquire() as conn:
            return await ApiKeyRepository(conn).by_prefix(prefix)


def _principal(key: ApiKey) -> Principal:
    return Principal(
        key_id=key.id,
        name=key.name,
        scope=key.scope,
        server_exposures=key.server_exposures,
        origins=key.origins,
        prefix=key.prefix,
        token_key=key.secret_hash if key.scope is Scope.CLIENT else b"",
    )


def credentials(raw_headers: list[tuple[bytes, bytes]]) -> str | None:
    """The API key of a request, from `Authorization: Bearer ...` or else `X-API-Key`; None when there is
    neither. An Authorization header of another form (a bare key, `Basic ...`) with no X-API-Key beside it
    (a proxy may add its own) is refused with what to send instead, never with its value, which may be a key."""
    api_key = refused = None
    for name, value in raw_headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            refused = (
                "got the Bearer scheme without a key"
                if scheme.lower() == "bearer"
                else _not_bearer(scheme if token else "")
            )
        elif name == b"x-api-key":
            api_key = value.decode("latin-1").strip() or None
    if api_key is None and refused is not None:
        raise Unauthorized(
            f"The Authorization header must be `Bearer <key>`; {refused}. Send `Authorization: Bearer <key>` "
            "or `X-API-Key: <key>`",
            headers=_CHALLENGE,
        )
    return api_key


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,19}", re.ASCII)


def _not_bearer(scheme: str) -> str:
    """What was sent instead of Bearer: its scheme's name (a short token) only."""
    return (
        f"got the {scheme} scheme" if _SCHEME.fullmatch(scheme) else "got a value without the Bearer scheme"
    )


Endpoint = Callable[[Request, Principal], Awaitable[Response]]


def requires(scope: Scope) -> Callable[[Endpoint], Callable[[Request], Awaitable[Response]]]:
    """Guard an endpoint: it runs only for a key that may use `scope`, and is handed its principal."""

    def guard(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            authenticator: Authenticator = request.scope["state"]["server"].auth
            principal = await authenticator.authenticate_scope(request.scope, scope)
            return await endpoint(request, principal)

        guarded.__name__ = endpoint.__name__
        guarded.__doc__ = endpoint.__doc__
        return guarded

    return guard
