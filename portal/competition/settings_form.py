"""The admin's settings form: the competition's values as the form shows them (local
times in the competition's timezone, seeds as `1-5, 9`) and back again.

Each refusal names the field and says what to write instead, so the form can come back
with what was typed and that one line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from portal.competition.models import Competition
from portal.competition.schemas import CompetitionUpdate
from portal.core.errors import validation_message
from portal.core.i18n import gettext as _
from portal.core.time import within_range
from portal.evaluation.pages import parse_seeds

FIELDS = ("name", "starts_at", "freeze_at", "ends_at", "public_seeds", "private_seeds")


def labels() -> dict[str, str]:
    """Each field's label, in the reader's language (the form and its refusals)."""
    return {
        "name": _("Name"),
        "starts_at": _("Start"),
        "freeze_at": _("Freeze"),
        "ends_at": _("End"),
        "public_seeds": _("Public seeds"),
        "private_seeds": _("Private seeds"),
    }


DATE_FIELDS = ("starts_at", "freeze_at", "ends_at")
SEED_FIELDS = ("public_seeds", "private_seeds")


class SettingsRefused(ValueError):
    """A value the form cannot take; the message names the field and the fix."""


def format_seeds(seeds: list[int]) -> str:
    """[1, 2, 3, 4, 5, 9] -> '1-5, 9'; `parse_seeds` reads it back to the same list
    (order kept: only ascending runs of three or more become ranges)."""
    parts: list[str] = []
    index = 0
    while index < len(seeds):
        end = index
        while end + 1 < len(seeds) and seeds[end + 1] == seeds[end] + 1:
            end += 1
        if end - index >= 2:
            parts.append(f"{seeds[index]}-{seeds[end]}")
        else:
            parts.extend(str(seed) for seed in seeds[index : end + 1])
        index = end + 1
    return ", ".join(parts)


def local_input(value: datetime | None, timezone: str) -> str:
    """An instant as a `datetime-local` value in the competition's timezone; seconds
    only when it has some (set through the API)."""
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(timezone))
    return f"{local:%Y-%m-%dT%H:%M:%S}" if local.second else f"{local:%Y-%m-%dT%H:%M}"


def form_values(competition: Competition, timezone: str) -> dict[str, str]:
    return {
        "name": competition.name,
        **{field: local_input(getattr(competition, field), timezone) for field in DATE_FIELDS},
        **{field: format_seeds(getattr(competition, field)) for field in SEED_FIELDS},
    }


def parse_local(field: str, text: str, timezone: str) -> datetime | None:
    """A `datetime-local` value read in the competition's timezone; None when empty."""
    text = text.strip()
    if not text:
        return None
    label = labels()[field]
    try:
        typed = datetime.fromisoformat(text)
    except ValueError:
        raise SettingsRefused(
            _(
                "%(label)s: '%(text)s' is not a date and time; write it like "
                "2025-06-01T18:00 (%(timezone)s).",
                label=label,
                text=text,
                timezone=timezone,
            )
        ) from None
    if typed.tzinfo is not None:  # an explicit offset (typed by hand) is taken as written
        return typed
    zone = ZoneInfo(timezone)
    local = typed.replace(tzinfo=zone)
    try:
        within_range(local)
    except ValueError as exc:
        raise SettingsRefused(f"{label}: {exc}.") from None
    # A time the clocks skip (the hour lost to daylight saving) does not exist there.
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != typed:
        raise SettingsRefused(
            _(
                "%(label)s: %(text)s does not exist in %(timezone)s (the clocks skip it); "
                "pick another time.",
                label=label,
                text=text,
                timezone=timezone,
            )
        )
    return local


def settings_update(
    typed: dict[str, str], competition: Competition, timezone: str
) -> CompetitionUpdate:
    """The change the form asks for. A date left as the form showed it is not sent, so
    saving a form whose instants carry sub-seconds (set through the API) does not move
    them."""
    shown = form_values(competition, timezone)
    fields: dict[str, object] = {"name": typed["name"]}
    for field in DATE_FIELDS:
        if typed[field].strip() == shown[field]:
            continue
        value = parse_local(field, typed[field], timezone)
        if value is None and field != "freeze_at":
            raise SettingsRefused(_("%(label)s: choose a date and time.", label=labels()[field]))
        fields[field] = value  # freeze_at None: no freeze
    for field in SEED_FIELDS:
        try:
            fields[field] = parse_seeds(typed[field])
        except ValueError as exc:
            raise SettingsRefused(f"{labels()[field]}: {exc}.") from None
    try:
        return CompetitionUpdate.model_validate(fields)
    except ValidationError as exc:
        raise SettingsRefused(
            "; ".join(
                f"{labels().get(str(error['loc'][0]), _('Input'))}: {validation_message(error)}"
                for error in exc.errors()
            )
        ) from None
