"""The results pages: /experiments (the index), /experiments/{key} (one experiment), /journeys (a funnel over
every unit), /login, /logout.

Server-rendered with Jinja2 (autoescaped); the two plots are drawn in the browser by uPlot, which
ships in this package (flagd/web/static, MIT licence beside it), so the pages need no network.

Login takes a results or admin key in a form (never in a URL) and opens a session (flagd.web.sessions);
the cookie is HttpOnly and SameSite=Strict. The login form carries a token that must match a cookie set
with the form (so another site cannot log a browser in), the logout form carries the session's token,
and a POST whose Origin is another site's is refused.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from flagd.auth.keys import Scope
from flagd.errors import FlagdError, Forbidden, InvalidParameter, PayloadTooLarge, Unauthorized
from flagd.http.body import read_body
from flagd.http.routing import resource
from flagd.results.jobs import Job, PageSession
from flagd.routes.journeys import journey_query
from flagd.routes.results import job, segment_param
from flagd.state import server_state
from flagd.web.render import render
from flagd.web.sessions import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_SECONDS,
    Session,
    close_session,
    find_session,
    open_session,
    same,
)

_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send "Origin: null" with forms
    "Cache-Control": "no-store",
}
_WRONG_KEY = "That key cannot open the results. Check it and try again."
_MAX_FORM_BYTES = 4096
_MAX_FORM_FIELDS = 8


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(template, **context), status_code=status, headers=_HEADERS)


def _message(
    heading: str, text: str, status: int, session: Session | PageSession | None = None
) -> HTMLResponse:
    return _page("message.html", status, heading=heading, text=text, session=session, back="/experiments")


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303, headers=_HEADERS)


def _safe_next(raw: str | None) -> str:
    """Only a page of this server (the results pages, data health, live events), never another host."""
    if (
        not raw
        or not raw.startswith(("/experiments", "/journeys", "/rollouts", "/data-health", "/events/live"))
        or raw.startswith("//")
        or "\\" in raw
    ):
        return "/experiments"
    return raw


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form, read within _MAX_FORM_BYTES however it is sent (chunked too) and at most
    _MAX_FORM_FIELDS fields; InvalidParameter or ValueError say what is wrong with it."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidParameter("send the form as application/x-www-form-urlencoded")
    try:
        body = await read_body(request, _MAX_FORM_BYTES)
    except PayloadTooLarge:
        raise InvalidParameter(f"the form is larger than {_MAX_FORM_BYTES} bytes") from None
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS))


async def _session(request: Request) -> Session | None:
    async with server_state(request).pool.acquire() as conn:
        return await find_session(conn, request.cookies.get(COOKIE))


# --- login and logout ------------------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    return _login_page(request, None, 200)


def _login_page(request: Request, error: str | None, status: int) -> Response:
    csrf = secrets.token_urlsafe(24)
    response = _page(
        "login.html", status, csrf=csrf, next=_safe_next(request.query_params.get("next")), error=error
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def login(request: Request) -> Response:
    if not _same_origin(request):
        return _message("Refused", "This form was sent from another site.", 403)
    try:
        form = await _form(request)
    except (InvalidParameter, ValueError) as exc:
        return _message("Refused", f"The login form could not be read: {exc}.", 400)
    if not same(form.get("csrf"), request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_page(request, "The login form expired. It has been renewed: log in again.", 403)
    state = server_state(request)
    try:
        principal = await state.auth.authenticate_token((form.get("key") or "").strip(), Scope.RESULTS)
    except (Unauthorized, Forbidden):
        return _login_page(request, _WRONG_KEY, 401)
    async with state.pool.acquire() as conn:
        token = await open_session(conn, principal.key_id)
    response = RedirectResponse(_safe_next(form.get("next")), status_code=303, headers=_HEADERS)
    response.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


async def logout(request: Request) -> Response:
    if not _same_origin(request):
        return _message("Refused", "This form was sent from another site.", 403)
    session = await _session(request)
    if session is None:
        return RedirectResponse("/login", status_code=303, headers=_HEADERS)
    try:
        form = await _form(request)
    except (InvalidParameter, ValueError) as exc:
        return _message("Refused", f"The logout form could not be read: {exc}.", 400, session)
    if not same(form.get("csrf"), session.csrf):
        return _message(
            "Refused", "The logout form is stale: reload the page and log out again.", 403, session
        )
    async with server_state(request).pool.acquire() as conn:
        await close_session(conn, request.cookies[COOKIE])
    response = RedirectResponse("/login", status_code=303, headers=_HEADERS)
    response.delete_cookie(COOKIE, path="/")
    return response


# --- the pages -------------------------------------------------------------------------------------


async def index(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return _login_redirect(request)
    return await _rendered(
        request, job(request, "index", session=PageSession(session.key_name, session.csrf))
    )


async def experiment(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return _login_redirect(request)
    try:
        segment = segment_param(request)
    except InvalidParameter as exc:
        return _message("Bad segment", exc.message, 400, session)
    work = job(
        request,
        "page",
        key=request.path_params["key"],
        segment=segment,
        session=PageSession(session.key_name, session.csrf),
    )
    return await _rendered(request, work)


async def journeys(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return _login_redirect(request)
    # The form sends every field, the empty ones too: an empty field is one left at its default.
    given = QueryParams([(k, v) for k, v in request.query_params.multi_items() if v.strip() != ""])
    try:
        query = journey_query(given, datetime.now(UTC).date()) if "step" in given else None
    except InvalidParameter as exc:
        return _message("Bad journey", exc.message, 400, session)
    work = job(request, "journey_page", journey=query, session=PageSession(session.key_name, session.csrf))
    return await _rendered(request, work)


async def rollouts_index(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return _login_redirect(request)
    return await _rendered(
        request, job(request, "rollouts_page", session=PageSession(session.key_name, session.csrf))
    )


async def rollout_page(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return _login_redirect(request)
    work = job(
        request,
        "rollout_page",
        key=request.path_params["key"],
        session=PageSession(session.key_name, session.csrf),
    )
    return await _rendered(request, work)


async def _rendered(request: Request, work: Job) -> Response:
    """A page rendered in a results process; when none can take it, a message page that says so."""
    try:
        answer = await server_state(request).results.run(work)
    except FlagdError as exc:
        response = _message("Try again shortly", exc.message, exc.status, work.session)
        response.headers.update(exc.headers or {})
        return response
    return HTMLResponse(answer.body, status_code=answer.status, headers=_HEADERS)


# --- static files ----------------------------------------------------------------------------------

_STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}


def _load_static() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("flagd.web") / "static"
    files = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), _STATIC_TYPES[suffix])
    return files


_STATIC = _load_static()


async def static(request: Request) -> Response:
    return _static_file(request.path_params["name"])


async def favicon(request: Request) -> Response:
    """The flag glyph browsers ask for at /favicon.ico whatever the page links."""
    return _static_file("favicon.ico")


# Public code and icons, sent without credentials: any origin may load them. A page on another origin imports
# flagd-web.js from here, and a module script is fetched in CORS mode (no preflight: a plain GET).
_STATIC_HEADERS = {
    "Cache-Control": "public, max-age=3600",
    "X-Content-Type-Options": "nosniff",
    "Access-Control-Allow-Origin": "*",
}


def _static_file(name: str) -> Response:
    found = _STATIC.get(name)
    if found is None:
        return Response("not found\n", status_code=404, media_type="text/plain")
    body, media_type = found
    return Response(body, media_type=media_type, headers=_STATIC_HEADERS)


routes = [
    resource("/experiments", GET=index),
    resource("/experiments/{key}", GET=experiment),
    resource("/journeys", GET=journeys),
    resource("/login", GET=login_form, POST=login),
    resource("/logout", POST=logout),
    resource("/static/{name}", GET=static),
    resource("/favicon.ico", GET=favicon),
    resource("/rollouts", GET=rollouts_index),
    resource("/rollouts/{key}", GET=rollout_page),
]


# For the other page modules (flagd.routes.data_health): the same session, headers and message page.
HEADERS = _HEADERS
find_page_session = _session
login_redirect = _login_redirect
message = _message
