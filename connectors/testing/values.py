"""Canonical values as the contract compares and writes them: ``comparable`` and ``sample_value``.

A CRM may store or return a value in another spelling than the canonical
one the pipeline sends (``"12500"`` for ``Decimal("12500")``, ``...+0000``
for ``...Z``): ``comparable`` brings both to one form per field type.
``sample_value`` picks a new value for a field, one that differs from what a
record holds, so that a write is seen to land.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator

from connectors.base import FieldSchema, FieldType

TEXT_TYPES = (FieldType.STRING, FieldType.TEXT)
NUMERIC_TYPES = (FieldType.NUMBER, FieldType.INTEGER)


def comparable(value: Any, field: FieldSchema) -> Any:
    """``value`` (canonical, or as a CRM stores or returns it) in one form per field type.

    Two spellings of one value compare equal: ``12500.0`` and ``"12500"``,
    ``"true"`` and ``True``, ``...+0000`` and ``...Z`` (to the field's
    ``scale`` of fractional seconds, 3 by default), ``"a;b"`` and ``("b", "a")``.
    Empty values (None, ``""``, an empty multi-select) are None.
    """
    if value is None or (isinstance(value, (str, tuple, list)) and not value):
        return None
    kind = field.type
    if kind in NUMERIC_TYPES:
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return value
    if kind is FieldType.BOOLEAN:
        return value if isinstance(value, bool) else str(value).strip().lower() == "true"
    if kind is FieldType.DATE:
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.UTC).date()
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
    if kind is FieldType.DATETIME:
        return _comparable_datetime(value, 3 if field.scale is None else field.scale)
    if kind is FieldType.MULTIPICKLIST:
        parts = value if isinstance(value, (tuple, list, set, frozenset)) else str(value).split(";")
        return frozenset(str(part) for part in parts if part)
    return value


def _comparable_datetime(value: Any, digits: int) -> dt.datetime:
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        when = dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)  # epoch milliseconds
    else:
        when = dt.datetime.fromisoformat(str(value))
    when = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    step = 10 ** (6 - min(max(digits, 0), 6))
    return when.replace(microsecond=when.microsecond // step * step)


def sample_value(field: FieldSchema, current: Any = None) -> Any:
    """A canonical value of ``field``'s type that differs from ``current`` (any spelling).

    Text is unique per call; a picklist takes an active option; a number fits
    the field's precision and scale; a datetime has only the fractional
    seconds the field keeps.
    """
    now = comparable(current, field)
    for candidate in _candidates(field):
        if comparable(candidate, field) != now:
            return candidate
    raise ValueError(f"no sample value of {field.name} differs from {current!r}")


def _candidates(field: FieldSchema) -> Iterator[Any]:
    kind = field.type
    active = [option.value for option in field.options if option.active]
    if kind in TEXT_TYPES or (kind is FieldType.PICKLIST and not active and not field.restricted):
        limit = field.max_length or 40
        yield f"contract {uuid.uuid4().hex}"[:limit]
    elif kind is FieldType.BOOLEAN:
        yield from (True, False)
    elif kind is FieldType.INTEGER:
        yield from (7, 8)
    elif kind is FieldType.NUMBER:
        yield from ((Decimal(7), Decimal(8)) if field.scale == 0 else (Decimal("7.5"), Decimal("8.5")))
    elif kind is FieldType.DATE:
        yield from (dt.date(2031, 5, 17), dt.date(2031, 5, 18))
    elif kind is FieldType.DATETIME:
        first = _comparable_datetime(dt.datetime(2031, 5, 17, 9, 30, 15, 123456, dt.UTC),
                                     3 if field.scale is None else field.scale)
        yield from (first, first + dt.timedelta(hours=1))
    elif kind is FieldType.PICKLIST:
        yield from active[:2]
    elif kind is FieldType.MULTIPICKLIST:
        yield from (tuple(active[:2]), tuple(active[:1])) if active else ()
    else:
        raise ValueError(f"{field.name}: a {kind} field takes no sample value (pick writable, typed fields)")


__all__ = ["NUMERIC_TYPES", "TEXT_TYPES", "comparable", "sample_value"]
