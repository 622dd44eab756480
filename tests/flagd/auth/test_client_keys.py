"""The pure parts of client keys: origins, stream tokens, token buckets; and `flagd keys create --origin`."""

from __future__ import annotations

import subprocess
import sys

import asyncpg
import pytest

from flagd.auth import keys, stream_tokens
from flagd.auth.origins import InvalidOrigin, origin, origins
from flagd.auth.repository import ApiKeyRepository
from flagd.http.rate_limit import Buckets, Rate, retry_after
from tests.support import flagd_env


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
        ("HTTPS://Shop.Example/", "https://shop.example"),
        ("https://shop.example:443", "https://shop.example"),
        ("http://shop.example:80", "http://shop.example"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_should_write_an_origin_as_browsers_send_it(written: str, sent: str) -> None:
    assert origin(written) == sent


@pytest.mark.parametrize(
    "written",
    ["", "shop.example", "ftp://shop.example", "https://shop.example/path", "https://a:99999", "*", "null"],
)
def test_should_refuse_what_is_not_an_origin(written: str) -> None:
    with pytest.raises(InvalidOrigin, match="scheme://host"):
        origin(written)


def test_should_keep_each_origin_once_in_order() -> None:
    assert origins(["https://b.example", "https://a.example", "HTTPS://b.example"]) == (
        "https://b.example",
        "https://a.example",
    )


NOW = 1_800_000_000.0


def test_should_accept_a_stream_token_in_its_window_and_the_next_only() -> None:
    key = keys.generate()
    issued = stream_tokens.issue(key.prefix, 7, key.secret_hash, NOW)
    token = stream_tokens.parse(issued)
    assert token is not None
    assert stream_tokens.genuine(token, 7, key.secret_hash)
    assert stream_tokens.issue(key.prefix, 7, key.secret_hash, NOW + 1) == issued  # NOW starts a window
    window = stream_tokens.WINDOW_SECONDS
    assert stream_tokens.current(token, NOW + window)
    assert not stream_tokens.current(token, NOW + 2 * window)
    assert not stream_tokens.current(token, NOW - window)


def test_should_refuse_a_stream_token_of_another_key_or_altered() -> None:
    key, other = keys.generate(), keys.generate()
    token = stream_tokens.parse(stream_tokens.issue(key.prefix, 7, key.secret_hash, NOW))
    assert token is not None
    assert not stream_tokens.genuine(token, 8, key.secret_hash)
    assert not stream_tokens.genuine(token, 7, other.secret_hash)
    later = stream_tokens.StreamToken(token.prefix, token.window + 10, token.mac)  # a window moved on by hand
    assert not stream_tokens.genuine(later, 7, key.secret_hash)
    assert stream_tokens.parse("not-a-token") is None
    assert stream_tokens.parse(f"{key.prefix}.1.short") is None


def test_should_refuse_past_the_burst_until_a_token_is_back() -> None:
    buckets = Buckets(Rate(per_second=2.0, burst=3), capacity=10)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 0.0) == pytest.approx(0.5)
    assert buckets.take("a", 0.5) == 0.0
    assert buckets.take("b", 0.5) == 0.0  # each name has its own bucket
    assert retry_after(0.2) == "1"
    assert retry_after(1.2) == "2"


def test_should_forget_the_least_recently_seen_names_past_capacity() -> None:
    buckets = Buckets(Rate(per_second=1.0, burst=1), capacity=2)
    buckets.take("a", 0.0)
    buckets.take("b", 0.0)
    buckets.take("c", 0.0)  # "a" is forgotten: it starts again with a full bucket
    assert len(buckets) == 2
    assert buckets.take("a", 0.0) == 0.0
    assert buckets.take("c", 0.0) > 0


def run_flagd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flagd", *args], env=flagd_env(), capture_output=True, text=True, timeout=120
    )


async def test_should_create_a_client_key_with_its_origins(database_url: str) -> None:
    created = run_flagd(
        "keys", "create", "--scope", "client", "shop", "--origin", "https://Shop.example",
        "--origin", "http://127.0.0.1:5173", "--database-url", database_url,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "allowed from https://shop.example, http://127.0.0.1:5173" in created.stderr
    presented = keys.parse(created.stdout.strip())
    assert presented is not None
    conn = await asyncpg.connect(database_url)
    try:
        stored = await ApiKeyRepository(conn).by_prefix(presented.prefix)
    finally:
        await conn.close()
    assert stored is not None
    assert stored.scope is keys.Scope.CLIENT
    assert stored.origins == ("https://shop.example", "http://127.0.0.1:5173")
    listed = run_flagd("keys", "list", "--database-url", database_url)
    assert "(origins: https://shop.example, http://127.0.0.1:5173)" in listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "sdk", "--origin", "https://shop.example"], "--origin is for client keys"),
        (["--scope", "client", "--origin", "https://shop.example/checkout"], "is not an origin"),
    ],
)
def test_should_refuse_origins_that_cannot_be_used(database_url: str, args: list[str], message: str) -> None:
    refused = run_flagd("keys", "create", *args, "--database-url", database_url)
    assert refused.returncode != 0
    assert message in refused.stderr
