"""An orphaned asyncpg future holding a lost connection is logged as a warning; anything else as before."""

from __future__ import annotations

import asyncio
import gc
import logging

import asyncpg
import pytest

from flagd.storage import lost_connections


async def _orphan(exc: BaseException) -> None:
    """A future that fails and is dropped unread, as asyncpg leaves one when the transport goes under it."""
    future = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    del future
    gc.collect()
    await asyncio.sleep(0)


async def test_should_log_a_lost_connection_left_in_a_future_as_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    lost_connections.install(loop)
    try:
        with caplog.at_level(logging.WARNING):
            await _orphan(
                asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
            )
    finally:
        loop.set_exception_handler(previous)
    records = [(r.levelname, r.name, r.getMessage()) for r in caplog.records]
    assert records == [
        (
            "WARNING",
            "flagd.storage.lost_connections",
            "a database connection was lost in the middle of an operation: "
            "connection was closed in the middle of operation",
        )
    ]


async def test_should_leave_any_other_unretrieved_exception_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    lost_connections.install(loop)
    try:
        with caplog.at_level(logging.WARNING):
            await _orphan(ValueError("a bug"))
    finally:
        loop.set_exception_handler(previous)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "never retrieved" in errors[0].getMessage()
