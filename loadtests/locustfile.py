"""Locust: traffic like real traffic against a running flagd.

    FLAGD_SDK_KEY=... FLAGD_RESULTS_KEY=... FLAGD_ADMIN_KEY=... FLAGD_LOADTEST_SETUP=1 \\
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8080 --headless -u 40 -r 10 --run-time 60s \\
        --csv loadtests/reports/run --html loadtests/reports/run.html

(`make loadtest` does all of it against a local server with 2 workers: loadtests/run.py.)

Users, by weight:
- `SdkApp` (10): an application server. Single-flag OFREP evaluations (most traffic), bulk evaluations
  with their ETag, and now and then the flag set for local evaluation with If-None-Match.
- `StreamingSdk` (1): an SDK evaluating locally, connecting to the change stream for its current version.
- `EventSender` (4): an SDK delivering events: each visitor is assigned by a local evaluation-like
  hash, its exposure is sent with a conversion whose probability depends on the variant (control
  `FLAGD_LOADTEST_BASE_RATE`, default 0.10; treatment times 1 + `FLAGD_LOADTEST_LIFT`, default 0.30) and
  a purchase value, in msgpack batches.
- `ProductManager` (1): polls the experiment's results, its time series and the results page (logged
  in through the form).

Settings (environment): FLAGD_SDK_KEY, FLAGD_RESULTS_KEY, FLAGD_ADMIN_KEY (only for setup),
FLAGD_LOADTEST_SETUP=1 (create the flags, metrics and experiment and start it, on test start),
FLAGD_LOADTEST_FLAG (default checkout-redesign), FLAGD_LOADTEST_EXPERIMENT (default checkout-test),
FLAGD_LOADTEST_BATCH (events per batch, default 50). Host, users, rate and run time are Locust's own options.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import time
import uuid
from typing import Any

import msgpack
from locust import FastHttpUser, HttpUser, between, events, task

SDK_KEY = os.environ.get("FLAGD_SDK_KEY", "")
RESULTS_KEY = os.environ.get("FLAGD_RESULTS_KEY", "")
ADMIN_KEY = os.environ.get("FLAGD_ADMIN_KEY", "")
FLAG = os.environ.get("FLAGD_LOADTEST_FLAG", "checkout-redesign")
EXPERIMENT = os.environ.get("FLAGD_LOADTEST_EXPERIMENT", "checkout-test")
BASE_RATE = float(os.environ.get("FLAGD_LOADTEST_BASE_RATE", "0.10"))
LIFT = float(os.environ.get("FLAGD_LOADTEST_LIFT", "0.30"))
BATCH = int(os.environ.get("FLAGD_LOADTEST_BATCH", "50"))
COUNTRIES = ["DE", "FR", "US", "NL", "BR", "JP"]
PLANS = ["free", "pro", "enterprise"]
VARIANTS = ("control", "treatment")


def flag_set() -> dict[str, Any]:
    """The flags, metrics and experiment the load test uses (created when FLAGD_LOADTEST_SETUP=1)."""
    return {
        "flags": {
            FLAG: {
                "state": "ENABLED",
                "variants": {"control": "control", "treatment": "treatment"},
                "defaultVariant": "control",
            },
            "banner": {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
                "targeting": {"if": [{"in": [{"var": "country"}, ["NL", "DE"]]}, "on", "off"]},
            },
            "new-search": {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
                "targeting": {"fractional": [["on", 20], ["off", 80]]},
            },
        },
        "metrics": {
            "purchased": {"type": "conversion", "event": "purchase", "direction": "increase"},
            "revenue": {"type": "sum", "event": "purchase", "direction": "increase"},
        },
        "experiments": {
            EXPERIMENT: {
                "flag": FLAG,
                "variants": {"control": 1, "treatment": 1},
                "expected_units": 20_000,
                "metrics": [
                    {"metric": "purchased", "role": "primary"},
                    {"metric": "revenue", "role": "secondary"},
                ],
            }
        },
    }


@events.test_start.add_listener
def set_up(environment: Any, **_: Any) -> None:
    if os.environ.get("FLAGD_LOADTEST_SETUP") != "1":
        return
    import httpx

    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=environment.host, headers=headers, timeout=30.0) as http:
        stored = http.put("/v1/admin/flag-set", json=flag_set())
        if stored.status_code != 200:
            raise RuntimeError(f"setting up the flag set failed: {stored.status_code} {stored.text}")
        started = http.post(f"/v1/admin/experiments/{EXPERIMENT}/start")
        if started.status_code not in (200, 409):
            raise RuntimeError(f"starting the experiment failed: {started.status_code} {started.text}")


def _require(value: str, name: str, scope: str) -> str:
    if not value:
        raise RuntimeError(f"set {name} to a key from `flagd keys create --scope {scope}`")
    return value


class SdkApp(FastHttpUser):
    weight = 10
    wait_time = between(0.0, 0.02)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {_require(SDK_KEY, 'FLAGD_SDK_KEY', 'sdk')}"}
        self.bulk_etag: str | None = None
        self.flags_etag: str | None = None

    def context(self) -> dict[str, Any]:
        return {
            "context": {
                "targetingKey": f"user-{random.randrange(200_000)}",
                "country": random.choice(COUNTRIES),
                "plan": random.choice(PLANS),
            }
        }

    @task(20)
    def evaluate_one(self) -> None:
        key = random.choice((FLAG, "banner", "new-search"))
        self.client.post(
            f"/ofrep/v1/evaluate/flags/{key}",
            json=self.context(),
            headers=self.headers,
            name="/ofrep/v1/evaluate/flags/[key]",
        )

    @task(3)
    def evaluate_all(self) -> None:
        headers = dict(self.headers)
        if self.bulk_etag:
            headers["If-None-Match"] = self.bulk_etag
        with self.client.post(
            "/ofrep/v1/evaluate/flags", json=self.context(), headers=headers, catch_response=True
        ) as response:
            if response.status_code in (200, 304):
                self.bulk_etag = response.headers.get("ETag", self.bulk_etag)
                response.success()

    @task(2)
    def fetch_flag_set(self) -> None:
        headers = dict(self.headers)
        if self.flags_etag:
            headers["If-None-Match"] = self.flags_etag
        with self.client.get("/v1/flags", headers=headers, catch_response=True) as response:
            if response.status_code in (200, 304):
                self.flags_etag = response.headers.get("ETag", self.flags_etag)
                response.success()


class StreamingSdk(HttpUser):
    """An SDK that evaluates locally: it connects to the change stream and reads the current version."""

    weight = 1
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {_require(SDK_KEY, 'FLAGD_SDK_KEY', 'sdk')}"}

    @task
    def follow_stream(self) -> None:
        with self.client.get(
            "/v1/flags/stream",
            headers=self.headers,
            stream=True,
            catch_response=True,
            name="/v1/flags/stream",
        ) as response:
            if response.status_code != 200:
                response.failure(f"the stream answered {response.status_code}")
                return
            for chunk in response.iter_content(chunk_size=None):
                if b"data:" in chunk:
                    response.success()
                    return
            response.failure("the stream ended before its first event")


def assigned(unit: str) -> str:
    """A stable 50/50 assignment of a visitor (the load test injects its effect by this variant)."""
    return VARIANTS[hashlib.blake2b(unit.encode(), digest_size=2).digest()[0] % 2]


class EventSender(FastHttpUser):
    weight = 4
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        self.headers = {
            "Authorization": f"Bearer {_require(SDK_KEY, 'FLAGD_SDK_KEY', 'sdk')}",
            "Content-Type": "application/msgpack",
        }

    @task
    def send_batch(self) -> None:
        now = int(time.time() * 1000)
        batch: list[dict[str, Any]] = []
        while len(batch) < BATCH:
            unit = f"visitor-{uuid.uuid4().hex[:12]}"
            variant = assigned(unit)
            batch.append(
                {
                    "kind": "exposure",
                    "event_id": str(uuid.uuid4()),
                    "timestamp": now,
                    "experiment": EXPERIMENT,
                    "phase": 1,
                    "variant": variant,
                    "unit": unit,
                    "attributes": {"country": random.choice(COUNTRIES)},
                }
            )
            rate = BASE_RATE * (1 + LIFT if variant == "treatment" else 1.0)
            if random.random() < rate:
                batch.append(
                    {
                        "kind": "track",
                        "event_id": str(uuid.uuid4()),
                        "timestamp": now + 1000,
                        "event": "purchase",
                        "unit": unit,
                        "value": round(random.expovariate(1 / 40), 2),
                    }
                )
        self.client.post("/v1/events", data=msgpack.packb({"events": batch}), headers=self.headers)


class ProductManager(HttpUser):
    weight = 1
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        token = _require(RESULTS_KEY, "FLAGD_RESULTS_KEY", "results")
        self.api_headers = {"Authorization": f"Bearer {token}"}
        form = self.client.get("/login", name="/login")
        found = re.search(r'name="csrf" value="([^"]+)"', form.text or "")
        csrf = found.group(1) if found else ""
        self.client.post(
            "/login",
            data={"key": token, "csrf": csrf, "next": f"/experiments/{EXPERIMENT}"},
            name="/login (POST)",
        )

    @task(3)
    def results(self) -> None:
        self.client.get(
            f"/v1/experiments/{EXPERIMENT}/results",
            headers=self.api_headers,
            name="/v1/experiments/[key]/results",
        )

    @task(1)
    def timeseries(self) -> None:
        self.client.get(
            f"/v1/experiments/{EXPERIMENT}/results/timeseries",
            headers=self.api_headers,
            name="/v1/experiments/[key]/results/timeseries",
        )

    @task(1)
    def page(self) -> None:
        with self.client.get(
            f"/experiments/{EXPERIMENT}", name="/experiments/[key]", catch_response=True
        ) as response:
            if response.status_code == 200 and (
                "decision-action" in response.text or "No data yet" in response.text
            ):
                response.success()
            else:
                response.failure(f"the results page answered {response.status_code} without a decision")
