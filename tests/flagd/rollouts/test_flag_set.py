"""PUT /v1/admin/flag-set with a rollouts: section: the same as `flagd apply` (examples/rollout.yaml)."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "rollout.yaml"


async def test_should_start_a_documents_new_rollouts_once_and_refuse_the_whole_document_on_a_problem(
    admin: httpx.AsyncClient,
) -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    broken = yaml.safe_load(EXAMPLE.read_text().replace("variant: one-page ", "variant: two-page "))
    refused = await admin.put("/v1/admin/flag-set", json=broken)
    assert refused.status_code == 422, refused.text
    paths = [d["path"] for d in refused.json()["error"]["details"]]
    assert "rollouts.one-page-release.variant" in paths, paths
    # Nothing of the refused document was applied: neither its flags nor its rollout.
    assert (await admin.get("/v1/admin/flag-set")).json()["flags"] == {}
    assert (await admin.get("/v1/rollouts")).json()["rollouts"] == []

    dry = await admin.put("/v1/admin/flag-set", params={"dry_run": "true"}, json=document)
    assert dry.status_code == 200, dry.text
    assert dry.json()["rollouts"] == ["rollout one-page-release: would start"]
    assert (await admin.get("/v1/rollouts")).json()["rollouts"] == []

    applied = await admin.put("/v1/admin/flag-set", json=document)
    assert applied.status_code == 200, applied.text
    assert applied.json()["rollouts"] == ["rollout one-page-release: started"]
    started = (await admin.get("/v1/rollouts/one-page-release")).json()
    assert started["state"] == "running"

    again = await admin.put("/v1/admin/flag-set", json=document)
    assert again.status_code == 200, again.text
    assert again.json()["rollouts"] == ["rollout one-page-release: running, left as it is"]
    assert len((await admin.get("/v1/rollouts")).json()["rollouts"]) == 1
    assert (await admin.put("/v1/admin/flag-set", json={**document, "rollouts": []})).status_code == 422
