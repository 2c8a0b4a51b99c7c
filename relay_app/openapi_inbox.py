"""The inbox's part of the relay's OpenAPI document: HTML pages, their JSON and form posts.

Pages answer 303 to the login form without a session; POSTs need the session's CSRF
token and are refused with a 403 page otherwise.
"""

from __future__ import annotations

from relay_app.inbox.pages import UPDATES_PATH
from relay_app.inbox.sessions import COOKIE
from relay_app.store_inbox import MAX_ROW_ID
from runtime.core.api_schemas import Schema, error_responses, json_body, parameter

OPERATOR: list[dict[str, list[str]]] = [{"operatorSession": []}]
INBOX_SCHEMES: dict[str, Schema] = {
    "operatorSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": COOKIE,
        "description": "Set by POST /messages/login (HttpOnly, SameSite=Strict).",
    }
}
HTML = {"text/html": {"schema": {"type": "string"}}}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds."}}
SEE_OTHER = {"description": "To the login form (no session), or back after a POST.",
             "headers": {"Location": {"schema": {"type": "string"}}}}  # fmt: skip
VIEW_PARAMS = ("status", "role", "agent", "node", "priority", "range", "from", "to", "q",
               "before", "after")  # fmt: skip


def inbox_paths() -> dict[str, Schema]:
    """The inbox's paths, keyed as in an OpenAPI `paths` object."""
    return {
        "/messages": {"get": _page("The inbox: filters, search, paging.", view=True)},
        "/messages/": {"get": _page("The inbox (same as /messages).", view=True)},
        "/messages/m/{msg_id}": {"get": _page("One message.", path="msg_id")},
        "/messages/nodes": {"get": _page("Node status panel and alerts.")},
        UPDATES_PATH: {"get": _updates()},
        "/messages/files/{file_id}": {"get": _page("Download a file.", path="file_id")},
        "/messages/actions": {"post": _form_post("Acknowledge, execute, archive or restore.",
                                                 ("csrf", "action", "msg_id", "one", "back"))},
        "/messages/login": {"get": _login_form(), "post": _login()},
        "/messages/logout": {"post": {**_form_post("End the session.", ("csrf",)),
                                      "security": [*OPERATOR, {}]}},  # without one: no-op
        "/messages/static/{name}": {"get": _static("The page's JS or CSS.", path=True)},
        "/messages/badge.js": {"get": _static("Embeddable unread badge script.")},
        "/messages/badge": {"get": _public_html("The badge as an HTML fragment (iframe).")},
        "/api/unread_count": {"get": _unread(), "options": _preflight()},
    }  # fmt: skip


def _page(summary: str, *, view: bool = False, path: str | None = None) -> Schema:
    params = [parameter(n, "query", {"type": "string"}, "View filter.") for n in VIEW_PARAMS]
    if path is not None:
        params = [parameter(path, "path", {"type": "string"}, f"The {path}.")]
    ok = {"description": "The page.", "content": HTML}
    if path == "file_id":
        ok = {"description": "The file.", "content": {"application/octet-stream": {}}}
    return {
        "summary": summary,
        "security": OPERATOR,
        "parameters": params if (view or path) else [],
        "responses": {"200": ok, "303": SEE_OTHER,
                      "404": {"description": "No such item.", "content": HTML}},
    }  # fmt: skip


def _updates() -> Schema:
    row_id = {"type": "integer", "minimum": 0, "maximum": MAX_ROW_ID}
    after = parameter("after_id", "query", row_id, "Rows stored after this row id.")
    shown = parameter(
        "shown", "query", {"type": "string"}, "Comma-separated msg_ids the page lists."
    )
    view = [parameter(n, "query", {"type": "string"}, "View filter.") for n in VIEW_PARAMS]
    body = {
        "type": "object",
        "required": ["rows", "watermark", "unread", "nodes_html", "alerts_html"],
        "properties": {
            "rows": {"type": "array", "items": {"type": "string"}},
            "watermark": {"type": "integer"},
            "unread": {"type": "integer", "minimum": 0},
            "summary": {"type": "string", "description": "The view's 'N matching' text."},
            "statuses": {"type": "object", "additionalProperties": {"type": "string"}},
            "nodes_html": {"type": "string"},
            "alerts_html": {"type": "string"},
        },
    }
    return {
        "summary": "Rows stored since after_id (as HTML rows), the badge and node panel.",
        "security": OPERATOR,
        "parameters": [after, shown, *view],
        "responses": {
            "200": json_body(body, "What changed."),
            **error_responses(
                {400: "after_id is not a row id.", 401: "No session: log in at /messages/login."}
            ),
        },
    }


def _form_post(summary: str, fields: tuple[str, ...]) -> Schema:
    form = {"type": "object", "properties": {f: {"type": "string"} for f in fields}}
    return {
        "summary": summary,
        "security": OPERATOR,
        "requestBody": {
            "content": {"application/x-www-form-urlencoded": {"schema": form}},
        },
        "responses": {
            "303": SEE_OTHER,
            "403": {"description": "No session, stale CSRF token or another origin.",
                    "content": HTML},
        },
    }  # fmt: skip


def _login_form() -> Schema:
    nxt = parameter("next", "query", {"type": "string"}, "Where to go after logging in.")
    return {
        "summary": "The login form.",
        "parameters": [nxt],
        "responses": {"200": {"description": "The form.", "content": HTML}},
    }


def _login() -> Schema:
    form = {
        "type": "object",
        "properties": {n: {"type": "string"} for n in ("user", "password", "next")},
    }
    return {
        "summary": "Log in as the operator; sets the session cookie.",
        "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": form}}},
        "responses": {
            "303": SEE_OTHER,
            "401": {"description": "Wrong user name or password.", "content": HTML},
            "403": {"description": "The form came from another origin.", "content": HTML},
            "429": {"description": "Too many failed logins from this address, or from all"
                    " (nothing was checked): retry after Retry-After seconds.",
                    "headers": RETRY_AFTER, "content": HTML},
            "503": {"description": "Too many logins being checked at once: retry after"
                    " Retry-After seconds.", "headers": RETRY_AFTER, "content": HTML},
        },
    }  # fmt: skip


def _static(summary: str, *, path: bool = False) -> Schema:
    script = {"text/javascript": {"schema": {"type": "string"}},
              "text/css": {"schema": {"type": "string"}}}  # fmt: skip
    name = parameter("name", "path", {"type": "string"}, "File name, e.g. inbox.js.")
    return {
        "summary": summary,
        "parameters": [name] if path else [],
        "responses": {
            "200": {"description": "The file.", "content": script},
            **error_responses({404: "No such file."}),
        },
    }


def _public_html(summary: str) -> Schema:
    return {"summary": summary, "responses": {"200": {"description": "HTML.", "content": HTML}}}


def _unread() -> Schema:
    body = {"type": "object", "required": ["unread"],
            "properties": {"unread": {"type": "integer", "minimum": 0}}}  # fmt: skip
    return {
        "summary": "Unread count for the dashboard's badge (public, CORS-open).",
        "responses": {"200": json_body(body, "The count.", {"unread": 3})},
    }


def _preflight() -> Schema:
    return {"summary": "CORS preflight.", "responses": {"204": {"description": "Allowed."}}}
