"""The rollout pages, rendered in a results process: /rollouts (every rollout) and /rollouts/{key} (its stage,
share over time, guardrails with their always-valid intervals at the latest look, and the transition log)."""

from __future__ import annotations

from flagd.results.jobs import HTML, Answer, Job
from flagd.rollouts.repository import RolloutRepository
from flagd.rollouts.wire import detail, summary
from flagd.storage.types import Connection
from flagd.web.render import message, render


async def answer(conn: Connection, job: Job) -> Answer:
    repository = RolloutRepository(conn)
    if job.kind == "rollouts_page":
        rows = [summary(row) for row in await repository.all()]
        return Answer(200, render("rollouts.html", rollouts=rows, session=job.session).encode(), HTML)
    row = await repository.get(job.key)
    if row is None:
        html = message("No such rollout", f"There is no rollout “{job.key}”.", job.session)
        return Answer(404, html.encode(), HTML)
    return Answer(200, render("rollout.html", r=await detail(conn, row), session=job.session).encode(), HTML)
