"""Dates read from text (a path, an object key, a tag) with a strptime format."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

__all__ = ["check_format", "parse_date"]


def check_format(fmt: str) -> str | None:
    """Given a strptime format, return why it cannot parse a date, or None if it can."""
    if "%" not in fmt.replace("%%", ""):
        return "it has no % directive, so it cannot read a date"
    sample = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    try:
        datetime.strptime(sample.strftime(fmt), fmt)  # noqa: DTZ007  (only a round trip)
    except ValueError as err:
        return str(err)
    return None


def parse_date(value: str, fmt: str, tz: tzinfo) -> datetime | None:
    """Given a date as text, return it as an aware datetime (at ``tz`` unless the format
    reads a zone), or None if it does not match the format."""
    try:
        parsed = datetime.strptime(value, fmt)  # noqa: DTZ007  (zone set below)
    except ValueError:
        return None
    return parsed.astimezone(tz) if parsed.tzinfo else parsed.replace(tzinfo=tz)
