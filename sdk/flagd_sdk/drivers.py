"""Carrying out the programs' effects (flagd_sdk.programs): threads for `Client`, tasks for `AsyncClient`.

Both send every request through one httpx client (the transport seam: tests may hand in a
`transport=`), with the key in the Authorization header. The change stream is read with a long read
timeout (the server sends a heartbeat every 15 s), other requests with Options.request_timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

from flagd_sdk.options import Options
from flagd_sdk.programs import Call, Effect, Line, Open, Pause, Program, Reply

logger = logging.getLogger("flagd_sdk")

STREAM_READ_TIMEOUT = 60.0


def client_settings(options: Options) -> dict[str, Any]:
    """What every httpx client of the SDK is built with: the server, the key, the request timeout."""
    return {
        "base_url": options.url,
        "headers": {"Authorization": f"Bearer {options.sdk_key}", "User-Agent": "flagd-sdk-python/0.1"},
        "timeout": httpx.Timeout(options.request_timeout),
    }


def _stream_request(http: httpx.Client | httpx.AsyncClient, effect: Open, options: Options) -> httpx.Request:
    """The streamed GET of `effect`, read with the long timeout a heartbeat-paced stream needs."""
    return http.build_request(
        "GET", effect.path, timeout=httpx.Timeout(options.request_timeout, read=STREAM_READ_TIMEOUT)
    )


def _step(program: Program, outcome: Any, failure: BaseException | None, name: str) -> Effect | None:
    """The program's next effect, given the last one's outcome or failure; None once it has ended (or
    failed: a bug in a program must not take the host application down)."""
    try:
        return program.throw(failure) if failure is not None else program.send(outcome)
    except StopIteration:
        return None
    except Exception:
        logger.exception("flagd_sdk %s stopped on an unexpected error", name)
        return None


def _reply(response: httpx.Response) -> Reply:
    return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)


class ThreadDriver:
    """Runs one program in a daemon thread."""

    def __init__(
        self,
        name: str,
        program: Callable[[], Program],
        options: Options,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self._name = name
        self._program = program
        self._options = options
        self._transport = transport
        self._wake = threading.Event()
        self._stopping = False
        self._stream: httpx.Response | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"flagd-sdk-{self._name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float) -> None:
        self._stopping = True
        self._wake.set()
        stream = self._stream
        if stream is not None:
            _interrupt(stream)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        with httpx.Client(**client_settings(self._options), transport=self._transport) as http:
            program = self._program()
            outcome: Any = None
            failure: BaseException | None = None
            lines: Iterator[str] | None = None
            while not self._stopping:
                effect = _step(program, outcome, failure, self._name)
                if effect is None:
                    return
                outcome, failure = None, None
                try:
                    if isinstance(effect, Call):
                        response = http.request(
                            effect.method, effect.path, headers=effect.headers, content=effect.content
                        )
                        outcome = _reply(response)
                    elif isinstance(effect, Open):
                        self._stream = http.send(_stream_request(http, effect, self._options), stream=True)
                        outcome = self._stream.status_code
                        if outcome == 200:
                            lines = self._stream.iter_lines()
                        else:
                            self._close_stream()
                    elif isinstance(effect, Line):
                        outcome = next(lines) if lines is not None and not self._stopping else None
                        if outcome is None:
                            self._close_stream()
                    elif isinstance(effect, Pause):
                        self._wake.wait(effect.seconds)
                        self._wake.clear()
                except StopIteration:
                    outcome = None
                    lines = None
                    self._close_stream()
                except Exception as exc:  # network failures go back to the program
                    if isinstance(effect, Line):
                        outcome, lines = None, None
                        self._close_stream()
                    else:
                        failure = exc
            self._close_stream()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()


def _interrupt(stream: httpx.Response) -> None:
    """End a stream another thread is reading: shutting its socket down wakes the blocked read at once (closing
    the response from this thread would not; the read would wait for the next heartbeat). The reading thread
    then closes the response itself. A transport without a socket (a test's) is closed instead."""
    network = stream.extensions.get("network_stream")
    sock = network.get_extra_info("socket") if network is not None else None
    with contextlib.suppress(Exception):
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
        else:
            stream.close()


class TaskDriver:
    """Runs one program in an asyncio task."""

    def __init__(
        self,
        name: str,
        program: Callable[[], Program],
        options: Options,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self._name = name
        self._program = program
        self._options = options
        self._transport = transport
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"flagd-sdk-{self._name}")

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        assert self._wake is not None
        async with httpx.AsyncClient(**client_settings(self._options), transport=self._transport) as http:
            program = self._program()
            outcome: Any = None
            failure: BaseException | None = None
            stream: httpx.Response | None = None
            lines: AsyncIterator[str] | None = None
            try:
                while True:
                    effect = _step(program, outcome, failure, self._name)
                    if effect is None:
                        return
                    outcome, failure = None, None
                    try:
                        if isinstance(effect, Call):
                            response = await http.request(
                                effect.method, effect.path, headers=effect.headers, content=effect.content
                            )
                            outcome = _reply(response)
                        elif isinstance(effect, Open):
                            stream = await http.send(
                                _stream_request(http, effect, self._options), stream=True
                            )
                            outcome = stream.status_code
                            if outcome == 200:
                                lines = stream.aiter_lines()
                            else:
                                await stream.aclose()
                                stream = None
                        elif isinstance(effect, Line):
                            outcome = await anext(lines) if lines is not None else None
                        elif isinstance(effect, Pause):
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(self._wake.wait(), effect.seconds)
                            self._wake.clear()
                    except StopAsyncIteration:
                        outcome, lines = None, None
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        if isinstance(effect, Line):
                            outcome, lines = None, None
                        else:
                            failure = exc
                    if outcome is None and isinstance(effect, Line) and stream is not None:
                        await stream.aclose()
                        stream = None
            finally:
                if stream is not None:
                    await stream.aclose()
