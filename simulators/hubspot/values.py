"""Property values and timestamps in HubSpot's wire form.

Every property value is a string on the wire. Dates are ``YYYY-MM-DD`` and
may also be sent as epoch milliseconds or an ISO datetime at UTC midnight;
datetimes are ISO 8601 or epoch milliseconds and are answered as
``YYYY-MM-DDTHH:MM:SS.sssZ``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?$")
DIGITS_RE = re.compile(r"^\d+$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(value: dt.datetime) -> str:
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def stringify(value: Any) -> str:
    """A seed value as HubSpot stores it (no validation)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)


def parse_date(value: str) -> tuple[str | None, str]:
    """A date value as HubSpot stores it (YYYY-MM-DD), or None and the reason."""
    if _DATE_RE.match(value):
        try:
            return dt.date.fromisoformat(value).isoformat(), ""
        except ValueError:
            return None, f"{value} was not a valid date."
    moment: dt.datetime | None = None
    if DIGITS_RE.match(value):
        try:
            moment = dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None, f"{value} was not a valid date."
    else:
        moment = _parse_iso(value)
    if moment is None:
        return None, f"{value} was not a valid date."
    moment = moment.astimezone(dt.UTC)
    if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
        return None, (f"{value} is at {moment.hour}:{moment.minute:02d}:{moment.second}."
                      f"{moment.microsecond // 1000:03d} UTC, not midnight!")
    return moment.date().isoformat(), ""


def _parse_iso(value: str) -> dt.datetime | None:
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def parse_datetime(value: str) -> dt.datetime | None:
    if DIGITS_RE.match(value):
        try:
            return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if _DATE_RE.match(value):
        try:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
        except ValueError:
            return None
    if "T" not in value:
        return None
    return _parse_iso(value)
