"""Calendar periods, in UTC: weeks from Monday, months from the 1st (leaderboards, challenges)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def period_start(moment: int, every: str) -> int:
    """The start of the `weekly` (Monday) or `monthly` (the 1st) period, 00:00 UTC, that
    `moment` (Unix time) falls in."""
    day = datetime.fromtimestamp(moment, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = day - timedelta(days=day.weekday()) if every == "weekly" else day.replace(day=1)
    return int(start.timestamp())


def period_end(start: int, every: str) -> int:
    """The end (the next period's start) of the period starting at `start` (see `period_start`)."""
    if every == "weekly":
        return start + 7 * 86_400
    first = datetime.fromtimestamp(start, UTC)
    return int(first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1).timestamp())
