"""`?page=&size=` in, `{"items", "page", "size", "total"}` out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
U = TypeVar("U")
MAX_PAGE_SIZE = 200
# Far beyond any real list, and small enough that page x size stays a valid SQL offset.
MAX_PAGE = 100_000
# Row ids are PostgreSQL integers: a larger number can name nothing, so it is a 422.
MAX_ROW_ID = 2**31 - 1


def search(text: str | None, *columns: Any) -> list[sa.ColumnElement[bool]]:
    """A list's search box as a WHERE condition: rows where any of `columns` contains
    the text, ignoring case; none for an empty search. The text is taken literally:
    `%`, `_` and `\\` are escaped, not LIKE's wildcards (a `_` matched every name)."""
    text = (text or "").strip()
    if not text:
        return []
    return [sa.or_(*(column.icontains(text, autoescape=True) for column in columns))]


@dataclass(frozen=True)
class PageParams:
    page: int
    size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


def page_params(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="1-based page number")] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="items per page")] = 50,
) -> PageParams:
    return PageParams(page=page, size=size)


PageDep = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    page: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @classmethod
    def empty(cls, params: PageParams) -> Page[T]:
        return cls(items=[], page=params.page, size=params.size, total=0)

    def map(self, to_item: Callable[[T], U]) -> Page[U]:
        """The same page with each item converted (a service's view to its response)."""
        return Page(
            items=[to_item(item) for item in self.items],
            page=self.page,
            size=self.size,
            total=self.total,
        )


async def paginate(
    session: AsyncSession,
    statement: sa.Select[*tuple[Any, ...]],
    params: PageParams,
    to_item: Callable[[Row[*tuple[Any, ...]]], T],
) -> Page[T]:
    """One page of the rows `statement` selects (in its order), each made an item by
    `to_item`, and the number of rows it selects in all.

    The total is counted from the statement itself, so it counts exactly the rows the
    pages show: a filter or join added to the list can never leave the total behind.
    """
    total = await session.scalar(
        sa.select(sa.func.count()).select_from(statement.order_by(None).subquery())
    )
    rows = await session.execute(statement.offset(params.offset).limit(params.size))
    return Page(
        items=[to_item(row) for row in rows],
        page=params.page,
        size=params.size,
        total=total or 0,
    )


def first_column(row: Row[Any]) -> Any:
    """For a statement that selects one entity (`select(Team)`): the entity itself."""
    return row[0]
