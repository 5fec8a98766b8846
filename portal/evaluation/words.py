"""The words the pages show for a batch's kind and its selection, in the reader's
language (the stored values stay the enum's English names); statuses are
portal.core.templating's `status` filter.

`register_filters` makes them the Jinja filters `kind_word` and `selection_word`; the
page modules that show batches call it when they are imported.
"""

from __future__ import annotations

from portal.core.i18n import gettext as _
from portal.core.templating import templates


def kind_word(kind: str) -> str:
    words = {"adhoc": _("ad hoc"), "public": _("public"), "final": _("final")}
    return words.get(str(kind), str(kind))


def selection_word(selection: str) -> str:
    words = {
        "final_picks": _("final picks"),
        "unevaluated": _("not yet evaluated"),
        "uploads": _("every upload"),
    }
    return words.get(str(selection), str(selection).replace("_", " "))


def register_filters() -> None:
    templates.env.filters["kind_word"] = kind_word
    templates.env.filters["selection_word"] = selection_word
