"""The inbox's pages and JSON reads, for a logged-in operator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import bottle

from relay_app.errors import QueryTooSlow
from relay_app.inbox import opened, render
from relay_app.inbox.charts import bars
from relay_app.inbox.filters import PRESETS, VIEWS, parse_view
from relay_app.inbox.reader import Page
from relay_app.inbox.search import parse_search, terms_pattern
from relay_app.inbox.service import Inbox
from relay_app.inbox.sessions import Session
from relay_app.store_inbox import MAX_ROW_ID, Arrivals
from runtime.core.envelope import PRIORITIES
from runtime.core.http_query import decoded_query
from runtime.core.ids import is_id

UPDATES_PATH = "/messages/api/updates"
# A live update reports the statuses of at most this many listed rows (the top of the list).
MAX_SHOWN = 200


def inbox_page(inbox: Inbox, session: Session, query: Mapping[str, str]) -> bottle.HTTPResponse:
    """GET /messages: filters, the page of messages, paging, live updates."""
    view = parse_view(query)
    notices = list(view.problems)
    try:
        page = inbox.reader.page(view)
    except QueryTooSlow:
        notices.append("That view took too long to read; narrow it with a filter or time range.")
        page = Page([], 0, False, None, None, 0, None)
    search = page.search or (parse_search(view.q) if view.q else None)
    pattern = terms_pattern(search.terms()) if search else None
    if view.q and search is None:
        notices.append("Nothing searchable in that search (only punctuation); showing all.")
    if search is not None:
        notices.extend(search.notes)
    nodes = inbox.nodes()
    volume = inbox.reader.volume()
    state = {
        "updates": view.url(UPDATES_PATH, before=None, after=None),
        "watermark": page.watermark,
        "first_page": view.before is None and view.after is None,
        "from": view.params().get("from"),
        "to": view.params().get("to"),
    }
    body = render.render(
        "inbox.tpl",
        view=view,
        page=page,
        pattern=pattern,
        summary=summary(page.total, page.capped),
        executed=inbox.reader.executed([r.msg_id for r in page.rows]),
        volume_svg=bars(volume) if volume is not None and volume.total else "",
        volume_total=volume.total if volume is not None else 0,
        sparks=inbox.sparks(nodes),
        facets=inbox.reader.facets(),
        views=VIEWS,
        presets=list(PRESETS),
        priorities=PRIORITIES,
        nodes=nodes,
        alerts=inbox.alerts(nodes),
        state_json=render.json_for_html(state),
        notices=notices,
        back=quote(view.url(), safe=""),
        **_chrome(inbox, session, "inbox" if view.status == "inbox" else view.status),
    )
    return render.page(body)


def updates(
    inbox: Inbox, query: Mapping[str, str], after_ids: Sequence[str] = ()
) -> bottle.HTTPResponse:
    """GET /messages/api/updates?after_id=N&<view>: rows stored since, badge, node panel.

    `after_ids` are every after_id value the query string holds (one at most).
    """
    view = parse_view(query)
    after_id = _after_id(after_ids)
    if after_id is None:
        return render.json_body(
            {"error": f"after_id: expected one integer from 0 to {MAX_ROW_ID}"}, 400
        )
    try:
        arrivals = inbox.reader.arrived_since(view, after_id, shown_ids(query.get("shown")))
    except QueryTooSlow:
        arrivals = Arrivals([], after_id, None, False, inbox.reader.unread_count())
    search = parse_search(view.q) if view.q else None
    pattern = terms_pattern(search.terms()) if search else None
    back = quote(view.url(), safe="")
    nodes = inbox.nodes()
    rows = [render.render("row.tpl", row=r, pattern=pattern, back=back, executed={})
            for r in arrivals.rows]  # fmt: skip
    return render.json_body(
        {
            "rows": rows,
            "watermark": arrivals.watermark,
            "unread": arrivals.unread,
            "summary": summary(arrivals.total, arrivals.capped),
            "statuses": arrivals.statuses,
            "nodes_html": render.render("nodes.tpl", nodes=nodes, sparks=inbox.sparks(nodes)),
            "alerts_html": render.render("alerts.tpl", alerts=inbox.alerts(nodes)),
        }
    )


def summary(total: int | None, capped: bool) -> str:
    """The "N matching" text beside the list (one wording for the page and live updates)."""
    if total is None:
        return "many matching"
    return f"{total}+ matching" if capped else f"{total} matching"


def shown_ids(text: str | None) -> list[str]:
    """The msg_ids a page lists (comma-separated, at most MAX_SHOWN); others dropped."""
    ids = (text or "").split(",")[:MAX_SHOWN]
    return [i for i in dict.fromkeys(ids) if is_id(i)]


def _after_id(values: Sequence[str]) -> int | None:
    """The row id a live update starts after (0 when absent); None when not one row id."""
    if len(values) > 1:
        return None
    text = values[0].strip() if values else "0"
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ROW_ID)):
        return None
    value = int(text)
    return value if value <= MAX_ROW_ID else None


def detail_page(
    inbox: Inbox, session: Session, msg_id: str, query: Mapping[str, str]
) -> bottle.HTTPResponse:
    """GET /messages/m/<msg_id>: every field, the content as pretty JSON, attached files,
    and who did what to it (the audit trail)."""
    row = inbox.reader.message(msg_id) if is_id(msg_id) else None
    chrome = _chrome(inbox, session, "detail")
    if row is None:
        body = render.render("missing.tpl", msg_id=msg_id, **chrome)
        return render.page(body, 404)
    row = opened.mark_read(inbox, row, session.user)
    chrome["counts"] = inbox.reader.counts()  # after the read: the badge counts it
    search = parse_search(query.get("q", "")) if query.get("q") else None
    pattern = terms_pattern(search.terms()) if search else None
    audit, audit_total = inbox.reader.audit_of(row.msg_id)
    body = render.render(
        "detail.tpl",
        row=row,
        **opened.links(inbox, row),
        content_html=render.pretty_json(row.content, pattern),
        files=inbox.reader.files_of(row.msg_id),
        audit=audit,
        audit_total=audit_total,
        thread=inbox.reader.thread(row.msg_id),
        now=inbox.now(),
        back=safe_back(query.get("back")),
        **chrome,
    )
    return render.page(body)


def nodes_page(inbox: Inbox, session: Session) -> bottle.HTTPResponse:
    """GET /messages/nodes: the node status panel on its own."""
    nodes = inbox.nodes()
    state = {"updates": f"{UPDATES_PATH}?status=inbox", "watermark": 2**62, "first_page": False}
    body = render.render(
        "nodes_page.tpl",
        nodes=nodes,
        sparks=inbox.sparks(nodes),
        alerts=inbox.alerts(nodes),
        state_json=render.json_for_html(state),
        **_chrome(inbox, session, "nodes"),
    )
    return render.page(body)


def _chrome(inbox: Inbox, session: Session, nav: str) -> dict[str, Any]:
    return {
        "session": session,
        "counts": inbox.reader.counts(),
        "flash": inbox.sessions.take_flash(session),
        "nav": nav,
    }


def safe_back(url: str | None, default: str = "/messages") -> str:
    """A return address inside the inbox only (no other host, no header injection)."""
    if not url or not url.startswith("/messages") or any(c in url for c in "\r\n\\"):
        return default
    if url.startswith("//"):
        return default
    return url


def query_of(request: Any) -> dict[str, str]:
    """The request's query parameters (last value wins), decoded as UTF-8."""
    return dict(decoded_query(request).items())
