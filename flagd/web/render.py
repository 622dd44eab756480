"""The results pages rendered from results' typed values: Jinja2 (autoescaped), no I/O of its own.

The experiment page and the index are rendered in a results process (flagd.results.jobs), never on
the worker's event loop; the login and message pages are small and rendered where they are asked for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from flagd.errors import FlagdError
from flagd.results import narrative
from flagd.results.jobs import HTML, Answer, Job
from flagd.results.narrative import humane
from flagd.results.preparing import Preparing
from flagd.results.service import ResultsService
from flagd.results.words import count, percent, plural
from flagd.web import journey_view, views
from flagd.web.funnels import funnels


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    moment = (datetime.fromisoformat(value) if isinstance(value, str) else value).astimezone(UTC)
    return f"{moment:%b} {moment.day}, {moment:%Y %H:%M} UTC"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("flagd.web", "templates"),
        autoescape=select_autoescape(["html"]),
        auto_reload=False,
    )
    env.filters.update(
        when=_when, count=count, plural=plural, percent=percent, words=humane, variant=narrative.variant
    )
    return env


_ENV = _environment()


def render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context)


PREPARING_REFRESH_SECONDS = 3
"""How often a page of results still being prepared reloads itself."""


def message(heading: str, text: str, session: object = None) -> str:
    return render("message.html", heading=heading, text=text, session=session, back="/experiments")


async def page_answer(service: ResultsService, job: Job) -> Answer:
    """The index, an experiment's page or the journeys page, or the message page that says why there is none."""
    if job.kind == "journey_page":
        return await _journey_page(service, job)
    if job.kind == "index":
        experiments = await service.experiments(job.now)
        metrics = {key: m.metric.name for key, m in service.catalog.metrics.items() if m.metric.name != key}
        html = render("index.html", experiments=experiments, metric_names=metrics, session=job.session)
        return Answer(200, html.encode(), HTML)
    entry = service.catalog.entries.get(job.key)
    if entry is None:
        return _message(404, "No such experiment", f"There is no experiment “{job.key}”.", job)
    if entry.phase < 1:
        return _message(
            200,
            "Not started",
            f"Experiment “{entry.name or job.key}” is a draft: it has not started, so it has no data yet. "
            f"Start it with `flagd experiments start {job.key}`.",
            job,
        )
    try:
        results = await service.results(job.key, None, job.options, job.now, job.segment)
        series = await service.timeseries(job.key, None, None, job.options, job.now)
    except FlagdError as exc:
        return _message(exc.status, "No results", exc.message, job)
    except Preparing as exc:
        # 202, and the page asks again by itself until the results are ready.
        html = render(
            "message.html",
            heading=f"Preparing results, {exc.progress.percent_done}% done",
            text=exc.progress.message[0].upper() + exc.progress.message[1:] + ".",
            session=job.session,
            back="/experiments",
            refresh=PREPARING_REFRESH_SECONDS,
        )
        return Answer(202, html.encode(), HTML)
    words = narrative.names_of(entry.plan)
    if results.exposed == 0:
        return _message(
            200,
            "No data yet",
            f"Experiment “{entry.name or job.key}” is {results.state} but no {words.many} have been exposed to it "
            "yet. Results appear once your application reports exposures (the SDK does it when it evaluates "
            "the flag).",
            job,
        )
    html = render(
        "experiment.html",
        key=job.key,
        name=entry.name,
        r=results,
        series=series,
        page=views.page(results, series, entry.plan),
        funnels=funnels(results, entry.plan),
        session=job.session,
    )
    return Answer(200, html.encode(), HTML)


async def _journey_page(service: ResultsService, job: Job) -> Answer:
    form = journey_view.JourneyForm.of(job.journey, job.now.date())
    if job.journey is None:
        html = render("journey.html", form=form, funnel=None, session=job.session)
        return Answer(200, html.encode(), HTML)
    try:
        funnel = await service.journey(job.journey, job.now)
    except FlagdError as exc:
        return _message(exc.status, "No journey", exc.message, job)
    html = render(
        "journey.html",
        form=form,
        funnel=funnel,
        view=journey_view.page(funnel),
        window=journey_view.duration(funnel.window_seconds),
        session=job.session,
    )
    return Answer(200, html.encode(), HTML)


def _message(status: int, heading: str, text: str, job: Job) -> Answer:
    return Answer(status, message(heading, text, job.session).encode(), HTML)
