"""`portal i18n`: keep the Korean and English catalogs in step with the code.

`extract` collects every string the code and templates pass to gettext, then updates
portal/locale/<lang>/LC_MESSAGES/messages.po: new strings arrive untranslated, strings no
longer used are dropped. `check` (also a test) fails while a string has no Korean
translation or a catalog misses a string the code uses.
"""

from __future__ import annotations

from pathlib import Path

import typer
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from portal.core.i18n import DOMAIN, LANGUAGE_NAMES, LANGUAGES, LOCALE_DIR
from portal.core.migrations import PROJECT_ROOT

i18n_app = typer.Typer(help="Translations (Korean and English catalogs).", no_args_is_help=True)

# The functions whose string arguments are messages (portal.core.i18n's names).
KEYWORDS = {
    "_": None,
    "gettext": None,
    "lazy_gettext": None,
    "ngettext": (1, 2),
}
SOURCES = (
    # (directory, babel method map)
    (PROJECT_ROOT / "portal", [("**.py", "python")]),
    (PROJECT_ROOT / "templates", [("**.html", "jinja2")]),
)
HEADER_COMMENT = (
    "# {language} for the competition portal's pages and messages.\n"
    "# Updated by `uv run portal i18n extract`; translate the empty msgstr entries."
)
JINJA_OPTIONS = {"extensions": "jinja2.ext.i18n", "trimmed": "true"}


def extracted_catalog() -> Catalog:
    """Every message the code and templates use right now."""
    catalog = Catalog(project="competition-portal", domain=DOMAIN, fuzzy=False)
    for directory, method_map in SOURCES:
        options = {"**.html": JINJA_OPTIONS}
        for filename, lineno, message, comments, context in extract_from_dir(
            directory, method_map, options_map=options, keywords=KEYWORDS, comment_tags=("I18N:",)
        ):
            location = (str((directory / filename).relative_to(PROJECT_ROOT)), lineno)
            catalog.add(message, None, [location], auto_comments=comments, context=context)
    return catalog


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(language: str) -> Catalog:
    path = catalog_path(language)
    if not path.exists():
        return Catalog(locale=language, domain=DOMAIN)
    with path.open("rb") as po_file:
        return read_po(po_file, locale=language, domain=DOMAIN)


def update_catalogs() -> dict[str, int]:
    """Bring each language's catalog in step with the code; the untranslated count."""
    template = extracted_catalog()
    untranslated = {}
    for language in LANGUAGES:
        catalog = read_catalog(language)
        # Pinned, so an extract that finds nothing new leaves the file as it was (and
        # two branches that each extract do not conflict on the header).
        template.creation_date = catalog.creation_date
        catalog.fuzzy = False
        catalog.project, catalog.version = "competition-portal", "1"
        catalog.header_comment = HEADER_COMMENT.format(language=LANGUAGE_NAMES[language])
        # No fuzzy matching: a guessed translation of a changed sentence reads as wrong
        # as a missing one, and a missing one is at least reported.
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        path = catalog_path(language)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as po_file:
            write_po(po_file, catalog, width=100, sort_output=True, include_lineno=False)
        untranslated[language] = sum(1 for message in catalog if message.id and not message.string)
    return untranslated


def catalog_problems() -> list[str]:
    """What `check` reports: strings missing from a catalog, and Korean left untranslated
    or only guessed (fuzzy)."""
    used = {
        (message.id if isinstance(message.id, str) else message.id[0])
        for message in extracted_catalog()
        if message.id
    }
    problems = []
    for language in LANGUAGES:
        catalog = read_catalog(language)
        known = {
            (message.id if isinstance(message.id, str) else message.id[0])
            for message in catalog
            if message.id
        }
        problems += [f"{language}: not in the catalog: {text!r}" for text in sorted(used - known)]
        problems += [f"{language}: no longer used: {text!r}" for text in sorted(known - used)]
        if language == "en":
            continue  # English reads the msgids themselves
        for message in catalog:
            if not message.id:
                continue
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            if message.fuzzy or not all(strings):
                problems.append(f"{language}: no translation: {message.id!r}")
    return problems


@i18n_app.command()
def extract() -> None:
    """Update the catalogs from the code and templates; list what needs translating."""
    untranslated = update_catalogs()
    for language, count in untranslated.items():
        if language != "en":
            typer.echo(f"{catalog_path(language).relative_to(PROJECT_ROOT)}: {count} untranslated")


@i18n_app.command()
def check() -> None:
    """Fail while a catalog is stale or a string has no Korean translation."""
    problems = catalog_problems()
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("catalogs are complete and up to date")
