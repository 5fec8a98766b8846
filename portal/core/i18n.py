"""Korean and English: which language a request reads, its catalogs, and the words and
figures formatted for it.

The language is chosen once per request, by `LanguageMiddleware`, and kept in a context
variable, so `gettext` works the same in a template, a flash message or a service's
refusal without a request being passed around:

- pages: the header's switch (the `portal_lang` cookie), else `Accept-Language`, else
  `PORTAL_DEFAULT_LANGUAGE`;
- the API (`/api/`) and the gateway (`/llm/`): English unless the client asks for
  another language with `Accept-Language` (scripts parse `message`s; a cookie set by a
  browser must not change them).

Catalogs are the `.po` files under portal/locale (the source of truth, reviewed in diffs);
they are compiled in memory at first use, so there is no build step and no `.mo` to
forget. `uv run portal i18n extract` refreshes them from the code and templates.
"""

from __future__ import annotations

import io
from contextvars import ContextVar
from datetime import date, datetime, tzinfo
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import LazyProxy, Translations
from starlette.types import ASGIApp, Receive, Scope, Send

LANGUAGES = ("en", "ko")
LANGUAGE_NAMES = {"en": "English", "ko": "한국어"}
LANGUAGE_COOKIE = "portal_lang"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "messages"

_language: ContextVar[str] = ContextVar("portal_language", default="en")


@cache
def translations(language: str) -> Translations:
    """The compiled catalog of one language (English falls back to the msgids)."""
    po_path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language == "en" or not po_path.exists():
        return Translations()
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    # Fuzzy entries are guesses pybabel made; they must not reach a reader.
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def current_language() -> str:
    return _language.get()


def set_language(language: str) -> None:
    """For code outside a request (the CLI, a test) that renders for a reader."""
    _language.set(language if language in LANGUAGES else "en")


def gettext(message: str, **variables: Any) -> str:
    """`message` in the request's language, with `%(name)s` variables filled in."""
    translated = translations(_language.get()).ugettext(message)
    return translated % variables if variables else translated


def ngettext(singular: str, plural: str, count: int, **variables: Any) -> str:
    """The singular or plural form for `count` (Korean has one form); `%(num)s` is the
    count, formatted for the language."""
    translated = translations(_language.get()).ungettext(singular, plural, count)
    return translated % {"num": format_number(count), **variables}


def lazy_gettext(message: str, **variables: Any) -> LazyProxy:
    """For text defined at import time (module constants), translated when shown."""
    return LazyProxy(gettext, message, **variables, enable_cache=False)


_ = gettext


def parse_accept_language(header: str) -> str | None:
    """The first of our languages the reader prefers, by q-value: `ko-KR,ko;q=0.9,en;q=0.8`
    gives `ko`; a header naming none of ours (or malformed) gives None."""
    choices: list[tuple[float, int, str]] = []
    # A browser sends a handful of choices; reading only the first 32 bounds what a
    # hostile header of thousands costs.
    for position, part in enumerate(header.split(",")[:32]):
        tag, _sep, params = part.strip().partition(";")
        language = tag.strip().lower().split("-")[0]
        quality = 1.0
        for param in params.split(";"):
            name, _eq, value = param.strip().partition("=")
            if name.strip().lower() == "q":  # parameter names ignore case
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if language in LANGUAGES and 0 < quality <= 1:
            choices.append((-quality, position, language))
    return min(choices)[2] if choices else None


def _cookie_value(cookie_header: str, name: str) -> str | None:
    for pair in cookie_header.split(";"):
        key, _eq, value = pair.strip().partition("=")
        if key == name:
            return value.strip().strip('"')
    return None


def language_for(path: str, cookie_header: str, accept_language: str, default: str) -> str:
    """The language a request reads (see the module's docstring for the order)."""
    if path.startswith(("/api/", "/llm/")):
        return parse_accept_language(accept_language) or "en"
    chosen = _cookie_value(cookie_header, LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return parse_accept_language(accept_language) or default


class LanguageMiddleware:
    """Sets the request's language before anything (a handler, a template, an error
    handler) writes a word."""

    def __init__(self, app: ASGIApp, default_language: str = "en") -> None:
        self.app = app
        self.default_language = default_language

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # A header sent on several lines is one list (HTTP/2 splits cookies so).
            cookies, accepted = [], []
            for name, value in scope.get("headers") or ():
                if name == b"cookie":
                    cookies.append(value.decode("latin-1"))
                elif name == b"accept-language":
                    accepted.append(value.decode("latin-1"))
            cookie, accept = "; ".join(cookies), ", ".join(accepted)
            path = scope.get("path", "")
            token = _language.set(language_for(path, cookie, accept, self.default_language))
            try:
                await self.app(scope, receive, send)
            finally:
                _language.reset(token)
        else:
            await self.app(scope, receive, send)


# Figures and dates, as the reader's language writes them.


def _locale() -> Locale:
    return _cached_locale(_language.get())


@cache
def _cached_locale(language: str) -> Locale:
    return Locale.parse("ko_KR" if language == "ko" else "en_US")


def format_number(number: int | float, decimals: int | None = None) -> str:
    """1,234,567 (both languages group by thousands); `decimals` fixes the fraction."""
    if decimals is None:
        return babel_numbers.format_decimal(number, locale=_locale())
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    return babel_numbers.format_decimal(number, format=pattern, locale=_locale())


def format_datetime(value: datetime | None, timezone: str | tzinfo, style: str = "medium") -> str:
    """A moment in the competition's timezone, 24-hour in both languages: `Nov 28, 2026,
    14:05 KST` or `2026. 11. 28. 14:05 KST`; "short" (table cells) is `Nov 28, 14:05` or
    `11월 28일 14:05`."""
    if value is None:
        return ""
    korean = _language.get() == "ko"
    local = value.astimezone(timezone if isinstance(timezone, tzinfo) else ZoneInfo(timezone))
    if style == "short":
        pattern = "M월 d일 HH:mm" if korean else "MMM d, HH:mm"
        return babel_dates.format_datetime(local, pattern, locale=_locale())
    pattern = "y. M. d. HH:mm" if korean else "MMM d, y, HH:mm"
    # The zone's abbreviation (KST, UTC, CET): Babel's long names read "Unknown Region".
    zone = local.strftime("%Z")
    return f"{babel_dates.format_datetime(local, pattern, locale=_locale())} {zone}".strip()


def format_date(value: date | None) -> str:
    if value is None:
        return ""
    return babel_dates.format_date(value, "medium", locale=_locale())
