"""The worker's open change streams, served together, so 10,000 of them cost little more than their sockets.

With a task, a timer and a key check per stream, each of 10,000 open streams woke twice a second to re-check
its key (a `wait_for` task and a timer each time: 20,000 a second) and once per heartbeat for a ping of its
own, and each change was encoded once per stream. The hub does each of those once for all (issue 26):

- one subscription to the config watcher: a new version is encoded once (its `id:` and `data:` lines; each
  stream adds its own `retry:` line) and handed to every stream in chunks of FAN_OUT_CHUNK, yielding to the
  event loop between chunks, so evaluation requests are answered while 10,000 streams are written;
- one heartbeat timer: every FLAGD_SSE_HEARTBEAT_SECONDS the same comment line goes to every stream;
- one key check per credential: streams that share a key (an SDK key, a client stream token) are checked
  together, every KEY_RECHECK_SECONDS and before each change is sent; a revoked key ends all its streams;
- one shutdown watch: when the server begins to stop, every stream ends itself with a complete response.

A stream's `Mailbox` holds at most the newest event and one heartbeat: a reader that has not taken the last
event skips to the newest (as the watcher's subscribers always did), so nothing is buffered without bound.
Writing to the socket stays with the stream's own request task, so a slow client blocks only itself; one
that has not written what it was given in SLOW_CLIENT_SECONDS is dropped (its connection aborted, counted in
flagd_connections_closed_total{reason="slow_stream"}).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from datetime import UTC, datetime

import orjson
from sse_starlette import EventSourceResponse

from flagd.config.snapshot import ConfigSnapshot
from flagd.config.watcher import ConfigWatcher
from flagd.http.transport import SLOW_STREAM
from flagd.metrics import STREAMS_OPEN
from flagd.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

FAN_OUT_CHUNK = 20
"""Streams handed an event before the hub yields to the event loop: each wakes its stream's task, which writes
to its socket in the next turn of the loop (about 75 microseconds through sse-starlette and the middleware), so
a turn stays near a millisecond and an evaluation waits for a few turns at most. With 200 a stream, OFREP p99
during a change to 1,000 streams was 33 ms (bench/streams.py)."""
SLOW_CLIENT_SECONDS = 30.0
"""How long a stream may take to write what it was given before its client is dropped as too slow: a reader
that far behind holds the worker's memory, not the stream's news."""
KEY_RECHECK_SECONDS = 0.5
"""How often open streams' keys are re-checked, so a revoked key's streams end within a second."""
SEP = b"\r\n"


def event_lines(snapshot: ConfigSnapshot) -> bytes:
    """The `id:` and `data:` lines of a version's change event, shared by every stream; each stream ends the
    event with its own `retry:` line (`retry_line`). Event data follows OFREP's change notifications."""
    data = {
        "type": "refetchEvaluation",
        "version": snapshot.version,
        "etag": snapshot.etag,
        "lastModified": int(snapshot.updated_at),
    }
    return b"id: %d%sdata: %s%s" % (snapshot.version, SEP, orjson.dumps(data), SEP)


def retry_line(retry_ms: int) -> bytes:
    """The end of a stream's change events: `retry:` tells clients how soon to reconnect when the stream ends
    (a restart, a deploy), then the blank line that ends the event."""
    return b"retry: %d%s%s" % (retry_ms, SEP, SEP)


def heartbeat() -> bytes:
    return f": ping - {datetime.now(UTC)}".encode() + SEP + SEP


class Mailbox:
    """What one stream has yet to write: at most the newest change event and one heartbeat.

    A stream whose task has not taken what it was given for `slow_seconds` is stuck writing to a client that
    does not read (its socket's buffers are full): the next offer drops it, through `abort` when the
    connection can be aborted (flagd.http.transport), else by ending the stream."""

    __slots__ = (
        "_ended",
        "_event",
        "_ping",
        "_retry",
        "_since",
        "_slow_seconds",
        "_wake",
        "abort",
        "credential",
        "version",
    )

    def __init__(
        self, credential: Hashable, retry_ms: int, *, slow_seconds: float = SLOW_CLIENT_SECONDS
    ) -> None:
        self.credential = credential
        self.version: int | None = None
        """The newest version this stream was given (sent or waiting)."""
        self.abort: Callable[[str], None] | None = None
        self._retry = retry_line(retry_ms)
        self._slow_seconds = slow_seconds
        self._event: bytes | None = None
        self._ping: bytes | None = None
        self._since = 0.0
        """When what is waiting was first given (the loop's clock)."""
        self._ended = False
        self._wake = asyncio.Event()

    def first(self, snapshot: ConfigSnapshot) -> bytes:
        """The event a stream sends on connect: the current version."""
        self.version = snapshot.version
        return event_lines(snapshot) + self._retry

    def offer(self, version: int, lines: bytes) -> None:
        if self._ended or version == self.version or self._stuck():
            return
        self.version = version
        self._event = lines  # replaces one not written yet: a slow reader skips to the newest
        self._wake.set()

    def ping(self, comment: bytes) -> None:
        if not self._ended and not self._stuck():
            self._ping = comment
            self._wake.set()

    def end(self) -> None:
        self._ended = True
        self._wake.set()

    def _stuck(self) -> bool:
        """Whether the stream has not taken what it was given in time; if so it is dropped."""
        now = asyncio.get_running_loop().time()
        if self._event is None and self._ping is None:
            self._since = now
            return False
        if now - self._since < self._slow_seconds:
            return False
        self.end()
        if self.abort is not None:
            self.abort(SLOW_STREAM)
        return True

    async def next(self) -> bytes | None:
        """The next bytes to write, or None once the stream is to end."""
        while True:
            if self._ended:
                return None
            if self._event is not None:
                chunk, self._event, self._ping = self._event + self._retry, None, None
                return chunk
            if self._ping is not None:
                chunk, self._ping = self._ping, None
                return chunk
            self._wake.clear()
            await self._wake.wait()


class _Credential:
    """The open streams of one key, and how to ask whether it is still valid."""

    __slots__ = ("mailboxes", "still_valid")

    def __init__(self, still_valid: Callable[[], Awaitable[bool]]) -> None:
        self.still_valid = still_valid
        self.mailboxes: set[Mailbox] = set()


class StreamHub:
    def __init__(self, watcher: ConfigWatcher, heartbeat_seconds: float) -> None:
        self._watcher = watcher
        self._heartbeat_seconds = heartbeat_seconds
        self._mailboxes: dict[Mailbox, None] = {}
        self._credentials: dict[Hashable, _Credential] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._check_lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._mailboxes)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._fan_out(), name="flagd-streams-fan-out"),
            asyncio.create_task(self._heartbeats(), name="flagd-streams-heartbeat"),
            asyncio.create_task(self._recheck(), name="flagd-streams-keys"),
            asyncio.create_task(self._until_shutdown(), name="flagd-streams-shutdown"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._end_all()

    def open(
        self,
        credential: Hashable,
        still_valid: Callable[[], Awaitable[bool]],
        retry_ms: int,
        abort: Callable[[str], None] | None = None,
    ) -> Mailbox:
        """A new stream's mailbox; its key is checked with `still_valid` (shared by the credential's streams),
        its connection dropped with `abort` if its client stops reading."""
        mailbox = Mailbox(credential, retry_ms)
        mailbox.abort = abort
        self._mailboxes[mailbox] = None
        group = self._credentials.get(credential)
        if group is None:
            group = self._credentials[credential] = _Credential(still_valid)
        group.mailboxes.add(mailbox)
        STREAMS_OPEN.inc()
        return mailbox

    def close(self, mailbox: Mailbox) -> None:
        if self._mailboxes.pop(mailbox, False) is not False:
            STREAMS_OPEN.dec()
        group = self._credentials.get(mailbox.credential)
        if group is not None:
            group.mailboxes.discard(mailbox)
            if not group.mailboxes:
                del self._credentials[mailbox.credential]

    async def _fan_out(self) -> None:
        subscriber = self._watcher.subscribe()
        try:
            while True:
                snapshot = await subscriber.get()
                if snapshot is None:  # the server is shutting down
                    self._end_all()
                    return
                await self._check_keys()  # a stream hears of a change only while its key is valid
                lines = event_lines(snapshot)
                version = snapshot.version
                async for chunk in self._chunks():
                    for mailbox in chunk:
                        mailbox.offer(version, lines)
        finally:
            self._watcher.unsubscribe(subscriber)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_seconds)
            comment = heartbeat()
            async for chunk in self._chunks():
                for mailbox in chunk:
                    mailbox.ping(comment)

    async def _recheck(self) -> None:
        while True:
            await asyncio.sleep(KEY_RECHECK_SECONDS)
            try:
                await self._check_keys()
            except Exception:
                logger.exception("re-checking the keys of open streams failed; retrying")

    async def _check_keys(self) -> None:
        async with self._check_lock:  # one pass at a time: the timer's and a change's would repeat each other
            for count, (credential, group) in enumerate(list(self._credentials.items()), 1):
                if not await group.still_valid():
                    for mailbox in list(group.mailboxes):
                        mailbox.end()
                        self.close(mailbox)
                    self._credentials.pop(credential, None)
                if count % FAN_OUT_CHUNK == 0:
                    await asyncio.sleep(0)

    async def _until_shutdown(self) -> None:
        # sse-starlette's one watcher per event loop for uvicorn's exit (a shared poll, not one per stream);
        # every stream then ends itself with the chunk that completes its response, within the grace period
        # sse-starlette gives it, instead of being cancelled half-way.
        await EventSourceResponse._listen_for_exit_signal()
        self._end_all()

    async def _chunks(self) -> AsyncIterator[list[Mailbox]]:
        """Every open stream, FAN_OUT_CHUNK at a time, with a turn of the event loop between chunks."""
        every = list(self._mailboxes)
        for start in range(0, len(every), FAN_OUT_CHUNK):
            if start:
                await asyncio.sleep(0)
            yield every[start : start + FAN_OUT_CHUNK]

    def _end_all(self) -> None:
        for mailbox in list(self._mailboxes):
            mailbox.end()
