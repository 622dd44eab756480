"""Client keys at the door: the origins they may be used from, and their rate limits.

A client key is public (any visitor of the page can read it), so what it may do is narrow (the guard's
scopes), from where (an `Origin` its key allows: the key's own origins, or the server's FLAGD_CORS_ORIGINS when
it has none), and how often (token buckets per client address and per key, flagd.http.rate_limit). A request
without `Origin` (a mobile app, a server) is not a browser's and is not checked against origins: origins keep
other sites' pages from using a key, nothing more.

The CORS middleware (flagd.http.cors) answers preflights, which carry no key, from `allows_anywhere`: the
server's origins and every client key's, kept in memory and read again whenever keys change (the guard's
LISTEN on `flagd_keys`) and every REFRESH_SECONDS, so a preflight costs a set lookup, never a query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import asyncpg
from starlette.types import Scope as AsgiScope

from flagd.auth.repository import ApiKeyRepository
from flagd.errors import FlagdError, Forbidden
from flagd.http.rate_limit import Buckets, Rate, retry_after
from flagd.settings import Settings
from flagd.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 60.0
MAX_ADDRESSES = 65_536
"""Client addresses whose buckets a worker keeps (least recently seen forgotten first)."""
MAX_KEYS = 4_096
REFUSED_ORIGIN = "flagd.origin_refused"
ADMITTED_ORIGIN = "flagd.origin_admitted"
"""Set in the request's scope to the Origin a client key was admitted from: the CORS middleware echoes it even
when the in-memory origins (read before authentication) do not know the key yet."""
"""Set in the ASGI scope when a request is refused for its origin, so the CORS middleware does not allow it."""


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    server_origins: frozenset[str] = frozenset()
    per_address: Rate = field(default_factory=lambda: Rate(20.0, 40))
    per_key: Rate = field(default_factory=lambda: Rate(1000.0, 2000))

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientPolicy:
        return cls(
            server_origins=frozenset(settings.cors_origins),
            per_address=Rate(settings.client_rate_per_second, settings.client_rate_burst),
            per_key=Rate(settings.client_key_rate_per_second, settings.client_key_rate_burst),
        )


class ClientAccess:
    def __init__(self, pool: asyncpg.Pool, policy: ClientPolicy) -> None:
        self._pool = pool
        self.policy = policy
        self._key_origins: frozenset[str] = frozenset()
        self._by_address = Buckets(policy.per_address, MAX_ADDRESSES)
        self._by_key = Buckets(policy.per_key, MAX_KEYS)
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def allows_anywhere(self, origin: str) -> bool:
        """Whether the server or any client key allows `origin` (what a preflight is answered from)."""
        return origin in self.policy.server_origins or origin in self._key_origins

    def admit(self, key_id: int, key_origins: tuple[str, ...], scope: AsgiScope) -> None:
        """Refuse (403 origin_not_allowed, 429 rate_limited) a client key's request, or let it go on."""
        origin = request_origin(scope)
        if origin is not None:
            allowed = key_origins or self.policy.server_origins
            if origin not in allowed:
                scope[REFUSED_ORIGIN] = True
                raise Forbidden(_refused(origin, bool(key_origins)), code="origin_not_allowed")
            scope[ADMITTED_ORIGIN] = origin
            if not self.allows_anywhere(origin):
                self.keys_changed()  # a key newer than the origins in memory: preflights learn it at once
        now = asyncio.get_running_loop().time()
        client = scope.get("client")
        limits = (
            (self._by_address, client[0] if client else "", "from this address", "FLAGD_CLIENT_RATE"),
            (self._by_key, key_id, "with this key", "FLAGD_CLIENT_KEY_RATE"),
        )
        for buckets, name, what, setting in limits:
            wait = buckets.take(name, now)
            if wait:
                raise _limited(wait, what, setting, buckets.rate)

    def keys_changed(self) -> None:
        self._changed.set()

    async def start(self) -> None:
        try:
            await self._refresh()
        except Exception as exc:  # the database may not be ready; the refresher keeps trying
            logger.warning("the client keys' origins could not be read yet: %s", exc)
        self._task = asyncio.create_task(self._refresher(), name="flagd-client-origins")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def _refresher(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), REFRESH_SECONDS)
            self._changed.clear()
            try:
                await self._refresh()
            except Exception as exc:
                logger.warning("reading the client keys' origins failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                self._changed.set()

    async def _refresh(self) -> None:
        async with self._pool.acquire() as conn:
            self._key_origins = await ApiKeyRepository(conn).client_origins()


def request_origin(scope: AsgiScope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"origin":
            return bytes(value).decode("latin-1")
    return None


def _refused(origin: str, own_origins: bool) -> str:
    shown = origin if len(origin) <= 100 and origin.isprintable() else "this origin"
    if own_origins:
        return (
            f"this client key may not be used from {shown}: it allows only the origins it was created with; "
            f"create a key with `flagd keys create --scope client --origin {shown}` for this page"
        )
    return (
        f"this client key may not be used from {shown}: it names no origins of its own and FLAGD_CORS_ORIGINS "
        "does not list this one; add it there or create a key with --origin"
    )


def _limited(wait: float, what: str, setting: str, rate: Rate) -> FlagdError:
    seconds = retry_after(wait)
    return FlagdError(
        f"too many requests {what} ({setting}_PER_SECOND={rate.per_second:g}, {setting}_BURST={rate.burst}); "
        f"retry after {seconds} s",
        code="rate_limited",
        status=429,
        headers={"Retry-After": seconds},
    )
