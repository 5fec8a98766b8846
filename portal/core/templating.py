"""Jinja pages and HTMX fragments.

A handler renders the whole page; when the request comes from HTMX (`HX-Request`) and
names a block, only that block is rendered (the contact-app / jinja2-fragments idea).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context

from portal.core.cookies import FLASH_COOKIE, pop_flash, session_data, set_session_cookie
from portal.core.htmx import VARY_HTMX, wants_fragment
from portal.core.i18n import (
    LANGUAGE_NAMES,
    LANGUAGES,
    current_language,
    format_datetime,
    format_number,
    translations,
)
from portal.core.i18n import gettext as _
from portal.core.logging import request_id_var
from portal.core.migrations import PROJECT_ROOT

templates = Jinja2Templates(directory=str(PROJECT_ROOT / "templates"))
templates.env.add_extension("jinja2.ext.i18n")
# Jinja fills in `%(name)s` itself (newstyle), after escaping: these only look words up.
templates.env.install_gettext_callables(  # type: ignore[attr-defined]
    lambda message: translations(current_language()).ugettext(message),
    lambda singular, plural, count: translations(current_language()).ungettext(
        singular, plural, count
    ),
    newstyle=True,
)
templates.env.policies["ext.i18n.trimmed"] = True


@pass_context
def _format_time(context: Context, value: datetime | None, style: str = "medium") -> str:
    """A moment in the competition's timezone, formatted for the reader's language."""
    return format_datetime(value, context["settings"].timezone, style)


def local_time(value: datetime | None, timezone: str, style: str = "medium") -> str:
    return format_datetime(value, timezone, style)


def _file_size(size: int) -> str:
    if size < 1024:
        return f"{format_number(size)}\N{NO-BREAK SPACE}B"
    scaled, unit = (size / 1024, "KiB") if size < 1024 * 1024 else (size / 1024**2, "MiB")
    figure = format_number(scaled, 0 if scaled == int(scaled) else 1)
    return f"{figure}\N{NO-BREAK SPACE}{unit}"


def humanize_duration(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    hours, minutes = divmod(minutes, 60)
    if hours:
        return _("in %(hours)s h %(minutes)s min", hours=hours, minutes=minutes)
    if minutes:
        return _("in %(minutes)s min", minutes=minutes)
    return _("in under a minute")


def human_seconds(milliseconds: int | float) -> str:
    """A duration given in milliseconds: 0.05 s, 1.84 s, 42.5 s, 12.3 min (the same
    words for a run's wall time and its CPU time, so they can be compared at a glance)."""
    seconds = milliseconds / 1000
    if seconds < 10:
        return _("%(seconds)s s", seconds=format_number(seconds, 2))
    if seconds < 600:
        return _("%(seconds)s s", seconds=format_number(seconds, 1))
    return _("%(minutes)s min", minutes=format_number(seconds / 60, 1))


def thousands(number: int) -> str:
    """A count as people read it: 1,234,567."""
    return format_number(number)


def compact_number(number: int) -> str:
    """A count in at most four characters and a unit, for tight columns: 950, 1.5k,
    100k, 2M, 3B, 1T (the exact figure belongs in a title or on the detail page)."""
    if abs(number) < 1000:
        return str(number)
    scaled, unit = float(number), ""
    for unit in ("k", "M", "B", "T"):
        scaled /= 1000
        rounded = round(scaled, 1) if abs(scaled) < 10 else round(scaled)
        if abs(rounded) < 1000 or unit == "T":
            return f"{rounded:g}{unit}"
    raise AssertionError("unreachable")


def age_words() -> dict[str, str]:
    """`humanize_age`'s words in the reader's language, with `{days}`, `{hours}`,
    `{minutes}` and `{seconds}` slots, keyed by the units shown: static/app.js humanises
    an age that ticks between polls with them, so it reads as the server writes it."""
    slots = {name: f"{{{name}}}" for name in ("days", "hours", "minutes", "seconds")}
    return {
        "days hours": _("%(days)s d %(hours)s h", **slots),
        "days": _("%(days)s d", **slots),
        "hours minutes": _("%(hours)s h %(minutes)s min", **slots),
        "hours": _("%(hours)s h", **slots),
        "minutes seconds": _("%(minutes)s min %(seconds)s s", **slots),
        "minutes": _("%(minutes)s min", **slots),
        "seconds": _("%(seconds)s s", **slots),
        "updated": _("updated %(age)s ago", age="{age}"),
    }


def humanize_age(seconds: float) -> str:
    """How long ago or how long for, in the two largest units: '4 s', '3 min 10 s',
    '2 h 5 min', '3 d 4 h'. Negative (a clock ahead of ours) reads as '0 s'."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    # The largest unit, and the next one when it is not zero (static/app.js `humanAge`).
    units = {"days": days, "hours": hours, "minutes": minutes, "seconds": secs}
    names = list(units)
    first = next((i for i, name in enumerate(names) if units[name]), len(names) - 1)
    shown = (
        names[first : first + 2]
        if first + 1 < len(names) and units[names[first + 1]]
        else [names[first]]
    )
    return age_words()[" ".join(shown)].format(**units)


templates.env.filters["seconds"] = human_seconds
templates.env.filters["datetime"] = _format_time
templates.env.filters["age"] = humanize_age
templates.env.globals["age_words"] = age_words
templates.env.filters["thousands"] = thousands
templates.env.filters["number"] = format_number
templates.env.filters["compact"] = compact_number
templates.env.filters["localtime"] = local_time
templates.env.filters["filesize"] = _file_size
templates.env.filters["tojson_attr"] = lambda value: json.dumps(value)


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    block: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    session = session_data(request)
    new_session = None
    if session is None:
        # Forms need a CSRF token even before login: issue an anonymous session.
        new_session = request.app.state.signer.new_anonymous()
        request.state.session_data = new_session
        session = new_session
    flashes = pop_flash(request)
    full_context = {
        "request": request,
        "current_team": getattr(request.state, "viewer", None),
        "csrf_token": session.csrf,
        "flashes": flashes,
        "settings": request.app.state.settings,
        "request_id": request_id_var.get(),
        "language": current_language(),
        "languages": [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        **(context or {}),
    }
    if block and wants_fragment(request):
        template = templates.env.get_template(name)
        html = "".join(template.blocks[block](template.new_context(full_context)))
        response = HTMLResponse(html, status_code=status_code, headers=headers)
    else:
        response = templates.TemplateResponse(
            request, name, full_context, status_code=status_code, headers=headers
        )
    response.headers["Vary"] = f"{VARY_HTMX}, Cookie, Accept-Language"
    if new_session is not None:
        set_session_cookie(request, response, new_session)
    if flashes:
        response.delete_cookie(FLASH_COOKIE)
    return response


def render_error_page(
    request: Request, status_code: int, message: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {"status_code": status_code, "message": message},
        status_code=status_code,
        headers=headers,
    )
