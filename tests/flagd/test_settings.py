from __future__ import annotations

import re
from pathlib import Path

import pytest

from flagd.settings import Settings, SettingsError


def test_should_use_documented_defaults_when_environment_is_empty() -> None:
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8080, 1)
    assert settings.data_dir == Path(".flagd")
    assert (settings.log_level, settings.log_format) == ("info", "text")
    assert settings.migrate_on_start is True


def test_should_read_every_variable_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u:p@db/flagd",
            "FLAGD_RESULTS_DATABASE_URL": "postgresql://u:p@replica/flagd",
            "FLAGD_HOST": "0.0.0.0",
            "FLAGD_PORT": "9000",
            "FLAGD_WORKERS": "4",
            "FLAGD_DATA_DIR": "/var/lib/flagd",
            "FLAGD_LOG_LEVEL": "DEBUG",
            "FLAGD_LOG_FORMAT": "json",
            "FLAGD_ACCESS_LOG": "off",
            "FLAGD_MIGRATE_ON_START": "no",
            "FLAGD_DB_POOL_MIN_SIZE": "2",
            "FLAGD_DB_POOL_MAX_SIZE": "20",
            "FLAGD_DB_CONNECT_TIMEOUT": "2.5",
            "FLAGD_MAX_BODY_BYTES": "65536",
            "FLAGD_HEADER_TIMEOUT_SECONDS": "4",
            "FLAGD_BODY_TIMEOUT_SECONDS": "20",
            "FLAGD_KEEP_ALIVE_SECONDS": "2.5",
            "FLAGD_MAX_CONNECTIONS": "500",
            "FLAGD_EVENTS_MAX_BODY_BYTES": "2048",
            "FLAGD_EVENTS_MAX_INFLATED_BYTES": "4096",
            "FLAGD_EVENTS_MAX_BATCH": "100",
            "FLAGD_EVENTS_MAX_PROPERTIES_BYTES": "512",
            "FLAGD_EVENTS_MAX_FUTURE_SKEW_SECONDS": "60",
            "FLAGD_EVENTS_MAX_AGE_DAYS": "7",
            "FLAGD_EVENTS_MAX_QUEUED": "1000",
            "FLAGD_EVENTS_COMMIT_TIMEOUT": "3",
            "FLAGD_SERVER_EXPOSURES": "false",
        }
    )
    assert settings == Settings(
        database_url="postgresql://u:p@db/flagd",
        results_database_url="postgresql://u:p@replica/flagd",
        host="0.0.0.0",
        port=9000,
        workers=4,
        data_dir=Path("/var/lib/flagd"),
        log_level="debug",
        log_format="json",
        access_log=False,
        migrate_on_start=False,
        db_pool_min_size=2,
        db_pool_max_size=20,
        db_connect_timeout=2.5,
        max_body_bytes=65536,
        header_timeout_seconds=4.0,
        body_timeout_seconds=20.0,
        keep_alive_seconds=2.5,
        max_connections=500,
        events_max_body_bytes=2048,
        events_max_inflated_bytes=4096,
        events_max_batch=100,
        events_max_properties_bytes=512,
        events_max_future_skew_seconds=60.0,
        events_max_age_days=7,
        events_max_queued=1000,
        events_commit_timeout=3.0,
        server_exposures=False,
    )


def test_should_treat_blank_values_as_unset() -> None:
    assert Settings.from_env({"DATABASE_URL": "", "FLAGD_PORT": "  "}) == Settings()


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"FLAGD_PORT": "eighty"}, "FLAGD_PORT must be a valid int, got 'eighty'"),
        ({"FLAGD_PORT": "70000"}, "FLAGD_PORT must be between 0 and 65535"),
        ({"FLAGD_WORKERS": "0"}, "FLAGD_WORKERS must be at least 1"),
        ({"FLAGD_LOG_FORMAT": "xml"}, "FLAGD_LOG_FORMAT must be one of text, json, got 'xml'"),
        ({"FLAGD_LOG_LEVEL": "loud"}, "FLAGD_LOG_LEVEL must be one of debug, info, warning, error, critical"),
        ({"FLAGD_ACCESS_LOG": "maybe"}, "FLAGD_ACCESS_LOG must be true or false, got 'maybe'"),
        ({"FLAGD_DB_POOL_MIN_SIZE": "5", "FLAGD_DB_POOL_MAX_SIZE": "2"}, "0 <= min <= max"),
        ({"FLAGD_DB_CONNECT_TIMEOUT": "0"}, "FLAGD_DB_CONNECT_TIMEOUT must be positive"),
        ({"FLAGD_MAX_BODY_BYTES": "10"}, "FLAGD_MAX_BODY_BYTES must be at least 1024"),
        ({"FLAGD_EVENTS_MAX_BATCH": "0"}, "FLAGD_EVENTS_MAX_BATCH must be between 1 and 100000, got 0"),
        ({"FLAGD_EVENTS_MAX_AGE_DAYS": "x"}, "FLAGD_EVENTS_MAX_AGE_DAYS must be a valid int, got 'x'"),
        ({"FLAGD_EVENTS_COMMIT_TIMEOUT": "0"}, "FLAGD_EVENTS_COMMIT_TIMEOUT must be between 0.1 and 600"),
        ({"FLAGD_SERVER_EXPOSURES": "sometimes"}, "FLAGD_SERVER_EXPOSURES must be true or false"),
        (
            {"FLAGD_HEADER_TIMEOUT_SECONDS": "0"},
            "FLAGD_HEADER_TIMEOUT_SECONDS must be between 0.1 and 600, got 0",
        ),
        (
            {"FLAGD_BODY_TIMEOUT_SECONDS": "nan"},
            "FLAGD_BODY_TIMEOUT_SECONDS must be a valid float, got 'nan'",
        ),
        ({"FLAGD_MAX_CONNECTIONS": "0"}, "FLAGD_MAX_CONNECTIONS must be between 1 and 500000, got 0"),
        ({"FLAGD_CONFIG_POLL_SECONDS": "nan"}, "FLAGD_CONFIG_POLL_SECONDS must be a valid float, got 'nan'"),
        (
            {"FLAGD_SSE_HEARTBEAT_SECONDS": "inf"},
            "FLAGD_SSE_HEARTBEAT_SECONDS must be a valid float, got 'inf'",
        ),
        ({"FLAGD_PORT": "\u0668\u0660"}, "FLAGD_PORT must be a valid int"),
        (
            {"FLAGD_RESULTS_DATABASE_URL": "replica:5432"},
            "FLAGD_RESULTS_DATABASE_URL must be a PostgreSQL URL",
        ),
        ({"FLAGD_WORKERS": "1_0"}, "FLAGD_WORKERS must be a valid int, got '1_0'"),
        (
            {"FLAGD_EVENTS_MAX_QUEUED": "10", "FLAGD_EVENTS_MAX_BATCH": "100"},
            "FLAGD_EVENTS_MAX_QUEUED must be at least FLAGD_EVENTS_MAX_BATCH",
        ),
    ],
)
def test_should_name_the_variable_when_a_value_is_invalid(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(fragment)):
        Settings.from_env(env)


def test_should_replace_only_the_database_url() -> None:
    base = Settings(port=9999)
    assert base.with_database("postgresql:///x") == Settings(port=9999, database_url="postgresql:///x")


def test_should_turn_the_results_watcher_off_with_0_and_refuse_an_interval_out_of_bounds() -> None:
    assert Settings().results_watch_seconds == 300.0
    assert Settings.from_env({"FLAGD_RESULTS_WATCH_SECONDS": "0"}).results_watch_seconds == 0.0
    assert Settings.from_env({"FLAGD_RESULTS_WATCH_SECONDS": "0.5"}).results_watch_seconds == 0.5
    for bad in ("0.01", "-1", "100000"):
        with pytest.raises(SettingsError, match=r"FLAGD_RESULTS_WATCH_SECONDS must be 0 \(off\) or between"):
            Settings.from_env({"FLAGD_RESULTS_WATCH_SECONDS": bad})
