"""One webhook attempt over HTTP, bounded: a connect timeout, a deadline for the whole attempt (however
slowly the receiver trickles its answer), at most MAX_ANSWER_BYTES of the answer read, no redirects
followed, no proxy from the environment. Any 2xx is delivered; anything else is a failure with a reason."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from flagd.settings import Settings

MAX_ANSWER_BYTES = 65_536
MAX_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    status: int | None
    duration_ms: float
    error: str | None


class Sender:
    def __init__(self, settings: Settings) -> None:
        self._deadline = settings.webhook_timeout_seconds
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.webhook_timeout_seconds, connect=settings.webhook_connect_timeout_seconds
            ),
            limits=httpx.Limits(
                max_connections=settings.webhook_concurrency,
                max_keepalive_connections=settings.webhook_concurrency,
            ),
            follow_redirects=False,
            trust_env=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> Outcome:
        started = time.perf_counter()
        status: int | None = None
        try:
            async with asyncio.timeout(self._deadline):
                async with self._client.stream("POST", url, content=body, headers=headers) as answer:
                    status = answer.status_code
                    read = 0
                    async for chunk in answer.aiter_raw():
                        read += len(chunk)
                        if read > MAX_ANSWER_BYTES:
                            break  # what it says past this is not needed; closing drops the connection
        except TimeoutError:
            return _failed(started, status, f"no complete answer within {self._deadline:g} s")
        except httpx.HTTPError as exc:
            return _failed(
                started, status, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            )
        if 200 <= status < 300:
            return Outcome(True, status, _ms(started), None)
        if 300 <= status < 400:
            return _failed(started, status, f"the receiver answered {status}; redirects are not followed")
        return _failed(started, status, f"the receiver answered {status}")


def _failed(started: float, status: int | None, error: str) -> Outcome:
    return Outcome(False, status, _ms(started), error[:MAX_ERROR_CHARS])


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
