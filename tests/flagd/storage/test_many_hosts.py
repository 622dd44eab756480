"""Two `flagd serve` hosts on one PostgreSQL primary, their results read from a streaming replica.

The module starts its own primary on TCP (wal_level=replica, a replication role) and a standby made with
`pg_basebackup -R`, then two hosts on the primary, each with FLAGD_RESULTS_DATABASE_URL on the standby.
The tests run in order on that one database: config changes, ingestion, results, scheduled work, and last
the keeper (which stops host A).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from flagd.auth.keys import Scope
from flagd.results import wire
from flagd.results.analysis import Options
from flagd.results.keeper import KEEPER_LOCK_KEY
from flagd.results.service import ResultsService
from flagd.results.sql.rollup import RollupPolicy
from tests.flagd.results.test_results_recompute import post_all, simulated, start_pricing
from tests.flagd.results.test_rollup import catalog_of, exposure, track
from tests.replicated import Replicated, ports, replicated_cluster, stop, wait_replayed
from tests.support import FlagdProcess, bearer, create_key, flag_definition, flagd_env

CONFIG_SECONDS = 1.0
"""Issue 26: a config change made through one host reaches every host's stream clients within this."""


@dataclass(frozen=True, slots=True)
class Host:
    process: FlagdProcess
    url: str

    def metric(self, text: str, name: str) -> float:
        """The value of one sample line of /metrics (0 when absent)."""
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@dataclass(frozen=True, slots=True)
class Hosts:
    cluster: Replicated
    a: Host
    b: Host


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    primary_port, replica_port, port_a, port_b = ports(4)
    logs = tmp_path_factory.mktemp("hosts")
    with replicated_cluster(primary_port, replica_port) as cluster:
        started: list[Host] = []
        try:
            for name, port in (("a", port_a), ("b", port_b)):
                env = flagd_env(
                    DATABASE_URL=cluster.primary_url,
                    FLAGD_RESULTS_DATABASE_URL=cluster.replica_url,
                    FLAGD_DATA_DIR=str(logs / f"data-{name}"),
                    FLAGD_METRICS="open",
                    FLAGD_RESULTS_ROLLUP_SECONDS="1",
                    FLAGD_SCHEDULES_POLL_SECONDS="0.2",
                    FLAGD_ACCESS_LOG="off",
                )
                # Both start at once: the second waits for the first's migrations (the migration lock).
                process = FlagdProcess(["serve", "--port", str(port)], env, logs / f"{name}.log")
                started.append(Host(process, f"http://127.0.0.1:{port}"))
            for host in started:
                host.process.wait_ready(host.url)
            yield Hosts(cluster, started[0], started[1])
        finally:
            for host in started:
                host.process.stop()


@pytest.fixture
async def primary(hosts: Hosts) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(hosts.cluster.primary_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def replica(hosts: Hosts) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(hosts.cluster.replica_url)
    try:
        yield conn
    finally:
        await conn.close()


async def _next_version(lines: AsyncIterator[str]) -> int:
    async for line in lines:
        if line.startswith("data:"):
            version: int = orjson.loads(line[5:])["version"]
            return version
    raise AssertionError("the stream ended")


async def test_should_deliver_a_change_through_one_host_to_streams_of_both_within_a_second(
    hosts: Hosts,
) -> None:
    admin = bearer(await create_key(hosts.cluster.primary_url, Scope.ADMIN))
    sdk = bearer(await create_key(hosts.cluster.primary_url, Scope.SDK))
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("GET", f"{hosts.a.url}/v1/flags/stream", headers=sdk) as on_a,
        http.stream("GET", f"{hosts.b.url}/v1/flags/stream", headers=sdk) as on_b,
    ):
        readers = [on_a.aiter_lines(), on_b.aiter_lines()]
        initial = [await _next_version(lines) for lines in readers]

        async def arrival(lines: AsyncIterator[str]) -> tuple[int, float]:
            version = await _next_version(lines)
            return version, time.monotonic()

        waiting = [asyncio.create_task(arrival(lines)) for lines in readers]
        sent = time.monotonic()
        created = await http.post(
            f"{hosts.a.url}/v1/admin/flags",
            json={"key": "banner", "definition": flag_definition()},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        arrived = await asyncio.wait_for(asyncio.gather(*waiting), 10)
    assert initial[0] == initial[1]
    assert [version for version, _ in arrived] == [initial[0] + 1] * 2
    delays = [moment - sent for _, moment in arrived]
    assert max(delays) < CONFIG_SECONDS, f"stream delays on A and B: {delays}"


def _results_view(body: dict[str, Any]) -> dict[str, Any]:
    """What the data decides in a results answer: not the clock (asOf, freshness) nor the looks' history."""
    return {
        "units": body["units"],
        "unitsInSeveralVariants": body["unitsInSeveralVariants"],
        "sampleRatio": body["sampleRatio"],
        "metrics": body["metrics"],
    }


async def _primary_results(primary: asyncpg.Connection, now: datetime) -> dict[str, Any]:
    """The experiment's results as of `now` computed over the primary alone (no replica)."""
    service = ResultsService(primary, await catalog_of(primary), RollupPolicy(pre_seconds=14 * 86_400))
    answer = await service.results("pricing", None, Options(), now)
    decoded: dict[str, Any] = orjson.loads(wire.dumps(answer))
    return decoded


async def test_should_store_events_posted_to_both_hosts_once_and_read_results_from_the_replica(
    hosts: Hosts, primary: asyncpg.Connection, replica: asyncpg.Connection
) -> None:
    url = hosts.cluster.primary_url
    admin_key, sdk_key = await create_key(url, Scope.ADMIN), await create_key(url, Scope.SDK)
    results_key = await create_key(url, Scope.RESULTS)
    async with (
        httpx.AsyncClient(base_url=hosts.a.url, timeout=60, headers=bearer(admin_key)) as admin,
        httpx.AsyncClient(base_url=hosts.a.url, timeout=60, headers=bearer(sdk_key)) as sdk_a,
        httpx.AsyncClient(base_url=hosts.b.url, timeout=60, headers=bearer(sdk_key)) as sdk_b,
        httpx.AsyncClient(timeout=60, headers=bearer(results_key)) as results,
    ):
        now = await start_pricing(admin, sdk_a, 60, url)
        # The same batch, the same event ids, to both hosts at once; then a batch of each host's own.
        same = simulated(now, 120)[-400:]
        await asyncio.gather(post_all(sdk_a, same), post_all(sdk_b, same))
        own = {
            host: [
                event
                for i in range(10)
                for event in (
                    exposure(f"{host}-{i}", ("control", "a", "b")[i % 3], now - timedelta(hours=5)),
                    track(f"{host}-{i}", "purchase", now - timedelta(hours=4), 10.0 + i),
                )
            ]
            for host in ("a", "b")
        }
        await asyncio.gather(post_all(sdk_a, own["a"]), post_all(sdk_b, own["b"]))
        sent = simulated(now, 60) + same + own["a"] + own["b"]
        tracks = {e["event_id"] for e in sent if e["kind"] == "track"}
        units = {e["unit"] for e in sent if e["kind"] == "exposure"}
        assert await primary.fetchval("SELECT count(*) FROM events") == len(tracks)
        assert await primary.fetchval("SELECT count(DISTINCT event_id) FROM events") == len(tracks)
        assert await primary.fetchval("SELECT count(*) FROM exposures WHERE experiment = 'pricing'") == len(
            units
        )

        answers = {}
        for name, host in (("a", hosts.a), ("b", hosts.b)):
            got = await results.get(f"{host.url}/v1/experiments/pricing/results")
            assert got.status_code == 200, got.text
            answers[name] = got.json()
        await wait_replayed(primary, replica)
        for answer in answers.values():
            # The same data at the same clock: the host's moment (the estimates per day move with it).
            expected = await _primary_results(primary, datetime.fromisoformat(answer["asOf"]))
            assert _results_view(answer) == _results_view(expected)
            assert _units(answer) == len(units)

        # The other reads behind results go to the replica too: the list, the series, a journey.
        listed = await results.get(f"{hosts.b.url}/v1/experiments")
        assert listed.status_code == 200, listed.text
        assert [e["units"] for e in listed.json()["experiments"] if e["key"] == "pricing"] == [len(units)]
        series = await results.get(f"{hosts.a.url}/v1/experiments/pricing/results/timeseries")
        assert series.status_code == 200, series.text
        assert len(series.json()["days"]) >= 3
        day = now.date()
        journey = await results.get(
            f"{hosts.b.url}/v1/journeys/funnel",
            params=[
                ("step", "visit"),
                ("step", "purchase"),
                ("from", (day - timedelta(days=3)).isoformat()),
                ("to", day.isoformat()),
                ("window", "2d"),
            ],
        )
        assert journey.status_code == 200, journey.text
        assert journey.json()["allUnits"]["steps"][0]["units"] > 0

        # The replica stops replaying: a read right after new events falls back to the primary, still
        # current (the new units are counted), and says so in the metrics.
        await replica.execute("SELECT pg_wal_replay_pause()")
        try:
            late = [exposure(f"late-{i}", "control", now - timedelta(hours=1)) for i in range(5)]
            await post_all(sdk_b, late)
            behind = await results.get(f"{hosts.a.url}/v1/experiments/pricing/results")
            assert behind.status_code == 200, behind.text
            lagging = await _readyz(hosts.a)
        finally:
            await replica.execute("SELECT pg_wal_replay_resume()")
        assert _units(behind.json()) == len(units) + 5
        assert lagging["resultsReplica"]["reachable"] is True
        assert lagging["resultsReplica"]["standby"] is True
        assert lagging["resultsReplica"]["lagBytes"] > 0

        for host in (hosts.a, hosts.b):
            text = (await results.get(f"{host.url}/metrics")).text
            assert host.metric(text, 'flagd_results_replica_reads_total{outcome="replica"}') >= 1, text
        text_a = (await results.get(f"{hosts.a.url}/metrics")).text
        assert hosts.a.metric(text_a, 'flagd_results_replica_reads_total{outcome="lagging"}') >= 1
        await wait_replayed(primary, replica)
        caught_up = await _readyz(hosts.b)
        assert caught_up["resultsReplica"]["reachable"] is True


def _units(body: dict[str, Any]) -> int:
    total: int = sum(u["units"] for u in body["units"]) + body["unitsInSeveralVariants"]
    return total


async def _readyz(host: Host) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        ready = await http.get(f"{host.url}/readyz")
    assert ready.status_code == 200, ready.text
    body: dict[str, Any] = ready.json()
    return body


async def test_should_execute_each_due_schedule_once_across_hosts(
    hosts: Hosts, primary: asyncpg.Connection
) -> None:
    admin = bearer(await create_key(hosts.cluster.primary_url, Scope.ADMIN))
    flags = [f"scheduled-{i}" for i in range(8)]
    due = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    async with httpx.AsyncClient(timeout=30, headers=admin) as http:
        for i, key in enumerate(flags):
            host = (hosts.a, hosts.b)[i % 2]
            created = await http.post(
                f"{host.url}/v1/admin/flags",
                json={"key": key, "definition": flag_definition(state="DISABLED")},
            )
            assert created.status_code == 201, created.text
            scheduled = await http.post(
                f"{host.url}/v1/schedules", json={"action": "enable_flag", "target": key, "dueAt": due}
            )
            assert scheduled.status_code == 201, scheduled.text
    deadline = time.monotonic() + 20
    while await primary.fetchval("SELECT count(*) FROM schedules WHERE status = 'pending'"):
        assert time.monotonic() < deadline, "the schedules were not executed"
        await asyncio.sleep(0.1)
    rows = await primary.fetch("SELECT target, status, executed_by FROM schedules ORDER BY target")
    assert [(r["target"], r["status"]) for r in rows] == [(key, "executed") for key in sorted(flags)]
    pids = {hosts.a.process.process.pid, hosts.b.process.process.pid}
    assert {int(r["executed_by"].rsplit(":", 1)[1]) for r in rows} <= pids
    updates = await primary.fetch(
        "SELECT entity_key, count(*) AS n FROM audit_log WHERE entity = 'flag' AND action = 'update' "
        "AND entity_key = ANY($1::text[]) GROUP BY entity_key",
        flags,
    )
    assert {r["entity_key"]: r["n"] for r in updates} == dict.fromkeys(flags, 1)


async def test_should_answer_results_from_the_primary_while_the_replica_is_down(hosts: Hosts) -> None:
    results = bearer(await create_key(hosts.cluster.primary_url, Scope.RESULTS))
    stop(hosts.cluster.replica_dir)
    async with httpx.AsyncClient(timeout=60, headers=results) as http:
        for host in (hosts.a, hosts.b):
            got = await http.get(f"{host.url}/v1/experiments/pricing/results")
            assert got.status_code == 200, got.text
            ready = await _readyz(host)
            assert ready["resultsReplica"]["reachable"] is False, ready
            text = (await http.get(f"{host.url}/metrics")).text
            assert host.metric(text, 'flagd_results_replica_reads_total{outcome="unreachable"}') >= 1, text


async def test_should_keep_results_up_on_one_host_at_a_time_and_on_the_other_when_it_stops(
    hosts: Hosts, primary: asyncpg.Connection
) -> None:
    async def caught_up() -> datetime:
        moment: datetime = await primary.fetchval("SELECT max(caught_up_at) FROM results_rollups")
        return moment

    async def advanced(since: datetime, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await caught_up() > since:
                return True
            await asyncio.sleep(0.1)
        return False

    holder = await asyncpg.connect(hosts.cluster.primary_url)
    try:
        # Whoever holds the keeper's lock keeps up: while the test holds it, neither host does.
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", KEEPER_LOCK_KEY)
        await asyncio.sleep(0.5)  # a round that began before the lock was taken ends
        held = await caught_up()
        assert not await advanced(held, 2.5)
        await holder.execute("SELECT pg_advisory_unlock($1)", KEEPER_LOCK_KEY)
        assert await advanced(held, 5)
        # The lock is the election: sampled while both hosts run rounds every second, never two holders.
        for _ in range(30):
            holders = await primary.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND ((classid::bigint << 32) | objid::bigint) = $1",
                KEEPER_LOCK_KEY,
            )
            assert holders <= 1
            await asyncio.sleep(0.05)
    finally:
        await holder.close()
    # Host A stops: host B keeps up alone.
    assert hosts.a.process.stop() == 0
    stopped = await caught_up()
    assert await advanced(stopped, 5)
