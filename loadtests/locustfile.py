"""Locust scenario: SDK traffic against a running flagd.

    FLAGD_SDK_KEY=$(flagd keys create --scope sdk) \\
    FLAGD_FLAGS=new-checkout,banner \\
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8080 --headless -u 50 -r 10 -t 60s

Each simulated application mostly evaluates single flags remotely (OFREP), sometimes
evaluates all flags at once (OFREP bulk, with its ETag), and now and then polls the
flag set for local evaluation (GET /v1/flags with If-None-Match). Every user has its
own targeting key; attributes vary so targeting rules and splits are exercised.
"""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, between, task

SDK_KEY = os.environ.get("FLAGD_SDK_KEY", "")
FLAGS = [key for key in os.environ.get("FLAGD_FLAGS", "new-checkout").split(",") if key]
COUNTRIES = ["DE", "FR", "US", "NL", "BR", "JP"]
PLANS = ["free", "pro", "enterprise"]


class SdkClient(FastHttpUser):
    wait_time = between(0.0, 0.01)

    def on_start(self) -> None:
        if not SDK_KEY:
            raise RuntimeError("set FLAGD_SDK_KEY to a key from `flagd keys create --scope sdk`")
        self.headers = {"Authorization": f"Bearer {SDK_KEY}", "Content-Type": "application/json"}
        self.targeting_key = str(uuid.uuid4())
        self.bulk_etag: str | None = None
        self.flags_etag: str | None = None

    def context(self) -> dict[str, object]:
        return {
            "context": {
                "targetingKey": self.targeting_key,
                "country": random.choice(COUNTRIES),
                "plan": random.choice(PLANS),
            }
        }

    @task(20)
    def evaluate_one(self) -> None:
        key = random.choice(FLAGS)
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

    @task(1)
    def poll_flag_set(self) -> None:
        headers = {"Authorization": self.headers["Authorization"]}
        if self.flags_etag:
            headers["If-None-Match"] = self.flags_etag
        with self.client.get("/v1/flags", headers=headers, catch_response=True) as response:
            if response.status_code in (200, 304):
                self.flags_etag = response.headers.get("ETag", self.flags_etag)
                response.success()
