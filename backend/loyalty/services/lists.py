"""Keyset pagination: a page is the rows after the last one the client saw, in a fixed order,
so a page costs the same at row 10 and row 1,000,000 (an OFFSET would scan everything before)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import Session

from loyalty.errors import ErrorCode, UnprocessableError

T = TypeVar("T")
MAX_LIMIT = 1_000


@dataclass(frozen=True)
class Page(Generic[T]):
    """Rows of one page, and the cursor of the next (None on the last page)."""

    rows: list[T]
    next_cursor: str | None


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque cursor: the sort key of the last row shown."""
    raw = json.dumps([v.isoformat() if hasattr(v, "isoformat") else v for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type]) -> tuple[Any, ...]:
    """The sort key a cursor holds, typed as `kinds` (int, str or datetime): ints within the
    database's 64 bits, times with their zone (as UTC); anything else is `invalid_cursor`."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError(cursor)
        return tuple(_typed(kind, v) for kind, v in zip(kinds, values, strict=True))
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise UnprocessableError(ErrorCode.INVALID_CURSOR, "the cursor is not one this list gave out") from exc


def _typed(kind: type, value: Any) -> Any:
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
            raise ValueError(value)
        return value
    if kind is datetime:
        parsed = datetime.fromisoformat(str(value))
        if parsed.tzinfo is None:
            raise ValueError(value)
        return parsed.astimezone(UTC)
    return kind(value)


def keyset(session: Session, query: Select[Any], order: Sequence[Any], cursor: str | None, limit: int) -> Page[Any]:
    """One page of `query` in `order` (ascending, unique), after `cursor`. Each row is what the
    query selects (one entity, or a tuple); the cursor holds the `order` values of the last."""
    kinds = [column.type.python_type for column in order]
    if cursor is not None:
        after = decode_cursor(cursor, kinds)
        query = query.where(tuple_(*order) > tuple_(*after)) if len(order) > 1 else query.where(order[0] > after[0])
    query = query.add_columns(*order).order_by(*order).limit(limit + 1)
    found = session.execute(query).all()
    width = len(order)
    rows = [row[0] if len(row) - width == 1 else tuple(row[:-width]) for row in found[:limit]]
    next_cursor = encode_cursor(found[limit - 1][-width:]) if len(found) > limit else None
    return Page(rows, next_cursor)
