"""The inbox's routes: who may see what, and the POSTs (login, logout, actions).

Routes (all under the relay's own origin; no CDN, nothing fetched elsewhere)::

    GET  /messages                   inbox page (filters and search in the query string)
    GET  /messages/m/<msg_id>        one message: fields, pretty JSON content, files
    GET  /messages/nodes             node status panel and alerts
    GET  /messages/api/updates       JSON: rows stored since after_id, badge, node panel
    GET  /messages/files/<file_id>   download an attached file
    POST /messages/actions           acknowledge / execute / archive / restore (CSRF)
    GET  /messages/login             login form; POST logs in
    POST /messages/logout            (CSRF)
    GET  /messages/static/<file>     the page's JS and CSS
    GET  /messages/badge.js          embeddable unread badge (a script for the main GUI)
    GET  /messages/badge             the badge as an HTML fragment (for an iframe)
    GET  /api/unread_count           {"unread": n}; public, CORS-open, only a number
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote

import bottle

from relay_app.errors import RelayAppError
from relay_app.http import read_body
from relay_app.inbox import pages, render
from relay_app.inbox.actions import ACTIONS
from relay_app.inbox.login import LOGIN_OUTCOME_KEY
from relay_app.inbox.service import Inbox
from relay_app.inbox.sessions import (
    Session,
    cookie_header,
    cookie_token,
    csrf_ok,
    same_origin,
)
from runtime.core.http_query import decoded_query
from runtime.core.ids import is_id

MAX_FORM_BYTES = 256 * 1024
_STATIC_NAME = re.compile(r"[a-z0-9_-]+\.(js|css)")
_STATIC_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
Handler = Callable[..., bottle.HTTPResponse]
_REFUSED = {
    "throttled": "Too many failed logins from your address: wait {wait} second{s}, then retry.",
    "busy": "Too many logins are being checked right now: wait {wait} second{s}, then retry.",
}


def routes(inbox: Inbox) -> list[tuple[str, str, Handler]]:
    """(method, path, handler) for every inbox route."""

    def page(handler: Callable[..., bottle.HTTPResponse]) -> Handler:
        # Bottle passes URL parts as keywords; handlers take them positionally after the session.
        return lambda **parts: _logged_in(inbox, handler, *parts.values())

    return [
        ("GET", "/messages", page(lambda s: pages.inbox_page(inbox, s, _query()))),
        ("GET", "/messages/", page(lambda s: pages.inbox_page(inbox, s, _query()))),
        (
            "GET",
            "/messages/m/<msg_id>",
            page(lambda s, m: pages.detail_page(inbox, s, m, _query())),
        ),
        ("GET", "/messages/nodes", page(lambda s: pages.nodes_page(inbox, s))),
        ("GET", pages.UPDATES_PATH, lambda: _api(inbox, lambda: _updates(inbox))),
        ("GET", "/messages/files/<file_id>", page(lambda _s, f: _file(inbox, f))),
        ("POST", "/messages/actions", lambda: _actions(inbox)),
        ("GET", "/messages/login", lambda: _login_form(inbox, "", 200)),
        ("POST", "/messages/login", lambda: _login(inbox)),
        ("POST", "/messages/logout", lambda: _logout(inbox)),
        ("GET", "/messages/static/<name>", _static),
        ("GET", "/messages/badge.js", lambda: _static("badge.js", cors=True)),
        ("GET", "/messages/badge", _badge_fragment),
        ("GET", "/api/unread_count", lambda: _unread(inbox)),
        ("OPTIONS", "/api/unread_count", _cors_preflight),
    ]


def _query() -> dict[str, str]:
    return pages.query_of(bottle.request)


def _updates(inbox: Inbox) -> bottle.HTTPResponse:
    after_ids = decoded_query(bottle.request).getall("after_id")
    return pages.updates(inbox, _query(), after_ids)


def _session(inbox: Inbox) -> Session | None:
    return inbox.sessions.get(cookie_token(bottle.request.environ.get("HTTP_COOKIE", "")))


def _logged_in(inbox: Inbox, handler: Handler, *args: Any) -> bottle.HTTPResponse:
    session = _session(inbox)
    if session is None:
        here = bottle.request.environ.get("PATH_INFO", "/messages")
        if bottle.request.query_string:
            here += "?" + bottle.request.query_string
        return render.redirect("/messages/login?next=" + quote(here, safe=""))
    return handler(session, *args)


def _api(inbox: Inbox, handler: Callable[[], bottle.HTTPResponse]) -> bottle.HTTPResponse:
    if _session(inbox) is None:
        return render.json_body({"error": "log in at /messages/login"}, 401)
    return handler()


def _form() -> dict[str, list[str]]:
    environ = bottle.request.environ
    kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    body = read_body(environ, MAX_FORM_BYTES)
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def _first(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0]


def _forbidden(text: str) -> bottle.HTTPResponse:
    return render.page(render.render("refused.tpl", reason=text), 403)


def _actions(inbox: Inbox) -> bottle.HTTPResponse:
    session = _session(inbox)
    if session is None:
        return _forbidden("You are not logged in (or your session expired). Log in and retry.")
    try:
        form = _form()
    except RelayAppError as exc:
        return _forbidden(str(exc))
    if not same_origin(bottle.request.environ) or not csrf_ok(session, _first(form, "csrf")):
        return _forbidden("The form's security token is missing or stale. Reload and retry.")
    back = pages.safe_back(_first(form, "back"))
    action, msg_ids = _chosen(form)
    if action not in ACTIONS or not msg_ids:
        notice = "Select at least one message, then choose an action."
    else:
        try:
            notice = inbox.actions.run(action, msg_ids, session.user).notice()
        except RelayAppError as exc:
            notice = f"Nothing changed: {exc}"
    inbox.sessions.flash(session, notice)
    return render.redirect(back)


def _chosen(form: dict[str, list[str]]) -> tuple[str, list[str]]:
    """A row's own button (`one` = "action:msg_id") wins over the selection."""
    one = _first(form, "one")
    if one:
        action, _, msg_id = one.partition(":")
        return action, [msg_id] if is_id(msg_id) else []
    ids = [m for m in form.get("msg_id", []) if is_id(m)]
    return _first(form, "action"), ids


def _login_form(
    inbox: Inbox,
    error: str,
    status: int,
    next_url: str | None = None,
    headers: dict[str, str] | None = None,
) -> bottle.HTTPResponse:
    next_url = pages.safe_back(next_url or bottle.request.query.get("next"))
    body = render.render("login.tpl", error=error, next_url=next_url, enabled=inbox.logins.enabled)
    return render.page(body, status, headers)


def _login(inbox: Inbox) -> bottle.HTTPResponse:
    try:
        form = _form()
    except RelayAppError as exc:
        return _forbidden(str(exc))
    environ = bottle.request.environ
    if not same_origin(environ):
        return _forbidden("Logins are accepted only from this relay's own page.")
    address = inbox.proxies.client(environ)
    try:
        attempt = inbox.logins.attempt(_first(form, "user"), _first(form, "password"), address)
    except RelayAppError as exc:  # the password was right, but no session could be stored
        text = f"The relay cannot keep a login right now ({exc}); retry later."
        return _login_form(inbox, text, exc.status, _first(form, "next"))
    environ[LOGIN_OUTCOME_KEY] = attempt.outcome  # counted by relay_app.metrics
    next_url = _first(form, "next")
    if attempt.outcome in ("throttled", "busy"):
        wait = attempt.retry_after
        text = _REFUSED[attempt.outcome].format(wait=wait, s="" if wait == 1 else "s")
        status = 429 if attempt.outcome == "throttled" else 503
        return _login_form(inbox, text, status, next_url, {"Retry-After": str(wait)})
    if attempt.session is None:
        return _login_form(inbox, "Wrong user name or password.", 401, next_url)
    cookie = cookie_header(attempt.session, inbox.proxies.https(environ))
    return render.redirect(pages.safe_back(next_url), {"Set-Cookie": cookie})


def _logout(inbox: Inbox) -> bottle.HTTPResponse:
    session = _session(inbox)
    if session is not None:
        form = _form()
        if not csrf_ok(session, _first(form, "csrf")):
            return _forbidden("The form's security token is missing or stale.")
        inbox.sessions.logout(session.token)
    secure = inbox.proxies.https(bottle.request.environ)
    return render.redirect("/messages/login", {"Set-Cookie": cookie_header(None, secure)})


def _file(inbox: Inbox, file_id: str) -> bottle.HTTPResponse:
    record = inbox.store.get_file(file_id) if is_id(file_id) else None
    if record is None:
        return render.page(render.render("refused.tpl", reason="No such file."), 404)
    path = inbox.data_dir / record.path
    response = bottle.static_file(
        path.name, root=str(path.parent), mimetype="application/octet-stream", download=True
    )
    if isinstance(response, bottle.HTTPResponse):
        response.set_header("X-Content-Type-Options", "nosniff")
        response.set_header("Content-Security-Policy", "sandbox")
    return response


def _static(name: str, *, cors: bool = False) -> bottle.HTTPResponse:
    match = _STATIC_NAME.fullmatch(name)
    if match is None or not (render.STATIC / name).is_file():
        return render.json_body({"error": "no such file"}, 404)
    response = bottle.static_file(
        name, root=str(render.STATIC), mimetype=_STATIC_TYPES[match.group(1)]
    )
    response.set_header("X-Content-Type-Options", "nosniff")
    response.set_header("Cache-Control", "no-cache")
    if cors:
        response.set_header("Access-Control-Allow-Origin", "*")
    return response


def _badge_fragment() -> bottle.HTTPResponse:
    """The badge for an iframe: the one page another site may frame."""
    csp = render.CSP.replace("frame-ancestors 'none'", "frame-ancestors *")
    response = render.page(render.render("badge.tpl"), headers={"Content-Security-Policy": csp})
    del response.headers["X-Frame-Options"]
    return response


def _unread(inbox: Inbox) -> bottle.HTTPResponse:
    return render.json_body(inbox.unread(), headers={"Access-Control-Allow-Origin": "*"})


def _cors_preflight() -> bottle.HTTPResponse:
    headers = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET"}
    return bottle.HTTPResponse("", 204, headers=headers)
