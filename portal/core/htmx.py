"""What HTMX asks and how to answer it, in one place (django-htmx's helpers).

HTMX marks its requests with `HX-Request: true`; it follows a redirect only when told
with `HX-Redirect` (a 303 would be followed by the browser's fetch and swapped in).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from portal.core.cookies import flash
from portal.core.i18n import gettext as _

HX_REDIRECT = "HX-Redirect"
HX_RETARGET = "HX-Retarget"
HX_RESWAP = "HX-Reswap"
# A page answers HTMX with a fragment and a browser with the whole page, so caches keep both.
VARY_HTMX = "HX-Request"
NEXT_MAX_CHARS = 500  # where to go after logging in: a path and query, never longer


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def wants_fragment(request: Request) -> bool:
    # Boosted requests and history restores (the back button) want the whole page;
    # other HTMX requests want just the block they swap.
    return (
        is_htmx(request)
        and request.headers.get("hx-boosted") != "true"
        and request.headers.get("hx-history-restore-request") != "true"
    )


def retarget(selector: str, swap: str = "innerHTML") -> dict[str, str]:
    """Headers that make HTMX put this response somewhere other than the request asked."""
    return {HX_RETARGET: selector, HX_RESWAP: swap}


# What RedirectResponse leaves unquoted in a Location header.
URL_SAFE = ":/%#?=@[]!$&'()*+,;"


def redirect(request: Request, url: str) -> Response:
    """303 for plain forms; HX-Redirect for HTMX so the whole page changes."""
    if is_htmx(request):
        # A header holds Latin-1 only: a path with Korean in it is sent percent-encoded,
        # as RedirectResponse sends its Location.
        return Response(status_code=204, headers={HX_REDIRECT: quote(url, safe=URL_SAFE)})
    return RedirectResponse(url, status_code=303)


def login_redirect(request: Request) -> Response:
    # Back to the page after logging in; without its query if that makes it too long
    # for the login form, and to the home page if even the path is.
    path, query = request.url.path, request.url.query
    url = "/login"
    for target in (f"{path}?{query}" if query else path, path):
        if len(target) <= NEXT_MAX_CHARS:
            url = f"/login?next={quote(target, safe='')}"
            break
    response = redirect(request, url)
    if getattr(request.state, "viewer", None) is not None:
        flash(request, response, _("That page needs an admin account."), "error")
    return response
