"""Form actions: a page that refuses an action leaves nothing of it behind.

The request's transaction commits whenever its handler returns normally (one request,
one transaction: `portal.core.db.get_session`). An API handler lets a `PortalError`
escape, so its transaction rolls back. A page handler cannot: it answers a refusal with
a page (the form again, with the reason), so the transaction commits whatever the
service wrote before it raised. That is how a dashboard upload with storage down once
left a submission row without a file and a quota slot used, and how a batch created
and started from the form stayed behind as a draft while the form showed the error.

So every page handler that changes state runs the change through `form_action`: the
action runs in a savepoint; on a `PortalError` the savepoint (and any job it queued)
is rolled back and the error is handed back for the page to show. Audit rows written in
the action's session (`audit.record`) roll back with it, so no entry claims a success
that did not happen; refusals that must leave a trace are written with
`audit.record_now`, in their own transaction, on purpose.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from portal.core.db import savepoint
from portal.core.errors import PortalError

P = ParamSpec("P")
T = TypeVar("T")


async def form_action(
    session: AsyncSession,
    action: Callable[P, Awaitable[T]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T | PortalError:
    """`await action(*args, **kwargs)` all or nothing: its result, or the refusal to show.

    Any other exception also rolls the action back and propagates (the request then
    fails and rolls back as a whole).
    """
    try:
        async with savepoint(session):
            return await action(*args, **kwargs)
    except PortalError as refusal:
        return refusal
