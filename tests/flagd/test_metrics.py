"""GET /metrics: scraped from a server with 2 workers, its counters match the traffic sent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from flagd.auth.keys import Scope
from tests.support import TIMEOUT, LiveServer, bearer, create_key, serving_workers

FLAGS = {
    "flags": {"banner": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}}
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_should_count_the_traffic_of_both_workers(database_url: str, tmp_path: Path) -> None:
    admin_key = await create_key(database_url, Scope.ADMIN)
    sdk_key = await create_key(database_url, Scope.SDK)
    server, base = await serving_workers(
        database_url, tmp_path / "serve.log", FLAGD_ACCESS_LOG="false", FLAGD_METRICS="open"
    )
    try:
        async with httpx.AsyncClient(base_url=base, headers=bearer(admin_key), timeout=10.0) as admin:
            assert (await admin.put("/v1/admin/flag-set", json=FLAGS)).status_code == 200
        evaluations, batches, per_batch = 300, 20, 50
        now_ms = int(time.time() * 1000)
        async with httpx.AsyncClient(base_url=base, headers=bearer(sdk_key), timeout=10.0) as sdk:
            # New connections, so both workers take a share.
            for i in range(evaluations):
                answer = await sdk.post(
                    "/ofrep/v1/evaluate/flags/banner",
                    json={"context": {"targetingKey": f"u{i}"}},
                    headers={"Connection": "close"},
                )
                assert answer.status_code == 200
            assert (await sdk.post("/ofrep/v1/evaluate/flags/nope", json={"context": {}})).status_code == 404
            for b in range(batches):
                events = [
                    {
                        "kind": "track",
                        "event_id": f"00000000-0000-4000-8000-{b:06d}{i:06d}",
                        "timestamp": now_ms,
                        "event": "purchase",
                        "unit": f"u{i}",
                    }
                    for i in range(per_batch)
                ]
                events.append({"kind": "track", "event_id": "bad", "timestamp": 0, "event": "x", "unit": "u"})
                sent = await sdk.post("/v1/events", json={"events": events}, headers={"Connection": "close"})
                assert sent.status_code == 200, sent.text
            again = await sdk.post("/v1/events", json={"events": events[:per_batch]})  # the last batch again
            assert again.status_code == 200
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as anyone:
            await asyncio.sleep(2.5)  # the sampled gauges (queue, pool, config) are written every 2 s
            scraped = await anyone.get("/metrics")
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        found = samples(scraped.text)
        assert value(found, "flagd_evaluations_total", flag="banner", reason="STATIC") == evaluations
        assert value(found, "flagd_evaluations_total", flag="(unknown)", reason="ERROR") == 1
        route = "/ofrep/v1/evaluate/flags/{key}"
        assert (
            value(found, "flagd_http_requests_total", route=route, method="POST", status="200") == evaluations
        )
        assert value(found, "flagd_http_request_seconds_count", route=route) == evaluations + 1
        accepted = batches * per_batch + per_batch
        assert value(found, "flagd_events_total", kind="track", outcome="accepted") == accepted
        assert value(found, "flagd_events_total", kind="track", outcome="deduplicated") == per_batch
        assert value(found, "flagd_events_rejected_total", code="invalid_event_id") == batches
        assert value(found, "flagd_group_commit_events_count") >= 1
        assert value(found, "flagd_event_queue_depth") == 0
        assert value(found, "flagd_db_pool_connections") >= 2  # at least one per worker
        versions = [v for (name, _), v in found.items() if name == "flagd_config_version"]
        assert versions == [1.0, 1.0]  # one series per worker, each serving the new version
    finally:
        await asyncio.to_thread(server.stop)


async def test_should_ask_for_an_admin_key_by_default(
    server: LiveServer, admin_key: str, sdk_key: str
) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers=bearer(sdk_key))).status_code == 403
        answer = await http.get("/metrics", headers=bearer(admin_key))
        assert answer.status_code == 200
        assert "flagd_http_requests_total" in answer.text
