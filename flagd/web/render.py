"""The results pages rendered from results' typed values: Jinja2 (autoescaped), no I/O of its own.

The experiment page and the index are rendered in a results process (flagd.results.jobs), never on
the worker's event loop; the login and message pages are small and rendered where they are asked for.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape

from flagd.errors import FlagdError
from flagd.results.jobs import HTML, Answer, Job
from flagd.results.model import Comparison, Estimate, ExperimentResults, MetricResult, Timeseries
from flagd.results.service import ResultsService


def _numeric(value: object) -> float | None:
    """A number, or None for anything else (None where a statistic has no value)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _percent(raw: object, digits: int = 1) -> str:
    value = _numeric(raw)
    if value is None or not math.isfinite(value):
        return "∞" if value is not None else "—"
    return f"{value:+.{digits}%}"


def _bound(raw: object, sign: str) -> str:
    """An interval's end, which is infinite when it is unbounded."""
    value = _numeric(raw)
    return f"{sign}∞" if value is None or not math.isfinite(value) else _percent(value)


def _number(raw: object, kind: str = "") -> str:
    value = _numeric(raw)
    if value is None:
        return "—"
    if kind == "conversion":
        return f"{value:.2%}"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def _p(raw: object) -> str:
    value = _numeric(raw)
    return "—" if value is None else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("flagd.web", "templates"),
        autoescape=select_autoescape(["html"]),
        auto_reload=False,
    )
    env.filters.update(
        lo=lambda v: _bound(v, "-"),
        hi=lambda v: _bound(v, "+"),
        pct=_percent,
        pct0=lambda v: "—" if _numeric(v) is None else f"{_numeric(v):.0%}",
        number=_number,
        p=_p,
        when=_when,
    )
    env.tests["estimate"] = lambda v: isinstance(v, Estimate)
    return env


_ENV = _environment()


def render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context)


def message(heading: str, text: str, session: object = None) -> str:
    return render("message.html", heading=heading, text=text, session=session, back="/experiments")


async def page_answer(service: ResultsService, job: Job) -> Answer:
    """The index or an experiment's page, or the message page that says why there is none."""
    if job.kind == "index":
        experiments = await service.experiments(job.now)
        return Answer(200, render("index.html", experiments=experiments, session=job.session).encode(), HTML)
    entry = service.catalog.entries.get(job.key)
    if entry is None:
        return _message(404, "No such experiment", f"There is no experiment “{job.key}”.", job)
    if entry.phase < 1:
        return _message(
            200, "Not started", f"Experiment “{job.key}” has not started yet, so it has no data.", job
        )
    try:
        results = await service.results(job.key, None, job.options, job.now, job.segment)
        series = await service.timeseries(job.key, None, None, job.options, job.now)
    except FlagdError as exc:
        return _message(exc.status, "No results", exc.message, job)
    if results.exposed == 0:
        return _message(
            200,
            "No data yet",
            f"Experiment “{job.key}” is {results.state} but no exposures have been recorded for it yet. "
            "Results appear once your application reports exposures (the SDK does it when it evaluates "
            "the flag).",
            job,
        )
    html = render(
        "experiment.html",
        key=job.key,
        name=entry.name,
        r=results,
        series=series,
        chart_data=chart_data(results, series),
        comparison=comparison_of,
        session=job.session,
    )
    return Answer(200, html.encode(), HTML)


def _message(status: int, heading: str, text: str, job: Job) -> Answer:
    return Answer(status, message(heading, text, job.session).encode(), HTML)


def comparison_of(metric: MetricResult, variant: str) -> Comparison | None:
    return next((c for c in metric.comparisons if c.variant == variant), None)


def chart_data(results: ExperimentResults, series: Timeseries) -> str:
    """The plots' data as JSON that is safe inside a <script> element."""
    variants = [u.variant for u in results.units]
    treatments = variants[1:]

    def column(treatment: str, field: str) -> list[float | None]:
        out: list[float | None] = []
        for day in series.days:
            found = next((c for c in day.comparisons if c.variant == treatment), None)
            value = (
                getattr(found.relative, field)
                if found is not None and isinstance(found.relative, Estimate)
                else None
            )
            out.append(None if value is None or not math.isfinite(value) else value * 100)
        return out

    data = {
        "control": results.control,
        "x": [datetime(d.day.year, d.day.month, d.day.day, tzinfo=UTC).timestamp() for d in series.days],
        "lift": [
            {
                "variant": t,
                "effect": column(t, "effect"),
                "low": column(t, "ci_low"),
                "high": column(t, "ci_high"),
            }
            for t in treatments
        ],
        "units": [{"variant": v, "values": [d.units.get(v, 0) for d in series.days]} for v in variants],
    }
    return orjson.dumps(data).decode().replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
