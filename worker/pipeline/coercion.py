"""Coercion of extracted values into a CRM field's type, and value comparison.

Pure functions, no I/O. An extracted value is turned into a *canonical* value
for a ``FieldSchema``:

==============  ===========================================================
field type      canonical value
==============  ===========================================================
STRING, TEXT    ``str`` (never silently cut: too long is ``InvalidValue``)
BOOLEAN         ``bool`` from true/false/yes/no/y/n/1/0 in any case
INTEGER         ``int``
NUMBER          ``Decimal``, rounded to the field's scale as the CRM would
DATE            ``datetime.date`` (a datetime becomes its UTC date)
DATETIME        aware UTC ``datetime.datetime``, to the millisecond
PICKLIST        ``str``: the matched option's value
MULTIPICKLIST   ``tuple[str, ...]`` of option values, in the order given
==============  ===========================================================

``parse_current`` reads what a CRM returns (Salesforce's ``12500.0`` and
``+0000`` offsets, HubSpot's strings and epoch milliseconds) into the same
canonical form, so ``same_value`` can tell that a second sync has nothing to
send.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Iterable

from connectors.base import FieldSchema, FieldType, Option

_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_GROUPED_NUMBER = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_EPOCH_MS = re.compile(r"^\d{10,14}$")
# No CRM stores a number beyond a double's range; refusing larger ones early
# also keeps int() and quantize() from working on absurd exponents ("1e999999999").
_MAX_DIGITS = 309
_TEXT_TYPES = (FieldType.STRING, FieldType.TEXT)


class InvalidValue(ValueError):
    """The value does not fit the field; ``str(error)`` is the reason shown to users."""


def is_null(value: Any) -> bool:
    """Whether an extracted value counts as "no value" (null, blank, empty list)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple)):
        return all(is_null(item) for item in value)
    return False


def coerce(value: Any, field: FieldSchema) -> Any:
    """The canonical value of ``value`` for ``field``, or ``InvalidValue``."""
    if is_null(value):
        if field.nillable:
            return None
        if field.type is FieldType.BOOLEAN:
            return False  # a checkbox cannot be empty: clearing it means false
        raise InvalidValue(f"{field.name} requires a value")
    coerce_as = _COERCERS.get(field.type)
    if coerce_as is None:
        raise InvalidValue(f"fields of type {field.crm_type or field.type.value} are not written")
    return coerce_as(value, field)


def _coerce_integer(value: Any, field: FieldSchema) -> int:
    number = _coerce_decimal(value)
    if number != number.to_integral_value():
        raise InvalidValue(f"{_show(value)} is not a whole number")
    _check_range(number, field)
    return int(number)


def _coerce_number(value: Any, field: FieldSchema) -> Decimal:
    number = _coerce_decimal(value)
    _check_range(number, field)
    if field.scale is not None:
        # Rounded as the CRM stores it, so next sync's read compares equal.
        number = _round(number, field.scale)
        _check_range(number, field)  # 999.999 rounds to 1000.00
    return number


def _coerce_picklist(value: Any, field: FieldSchema) -> str:
    if isinstance(value, (list, tuple)):
        items = [item for item in value if not is_null(item)]
        if len(items) != 1:
            raise InvalidValue(f"{_show(value)} has several values; the field takes one")
        value = items[0]
    return _match_option(_scalar_text(value), field)


def _coerce_multipicklist(value: Any, field: FieldSchema) -> tuple[str, ...] | None:
    items = _split_multi(value)
    if not items:
        return None  # only separators (" ; "): as null as an empty list
    matched: list[str] = []
    for item in items:
        option = _match_option(item, field)
        if option not in matched:
            matched.append(option)
    return tuple(matched)


def parse_current(raw: Any, field: FieldSchema) -> Any:
    """A CRM's current value in canonical form (lenient: unknown shapes stay as given)."""
    if raw is None or (isinstance(raw, str) and raw == ""):
        return None
    try:
        kind = field.type
        if kind is FieldType.BOOLEAN:
            return raw if isinstance(raw, bool) else _coerce_bool(raw)
        if kind in (FieldType.INTEGER, FieldType.NUMBER):
            return _coerce_decimal(raw)
        if kind is FieldType.DATE:
            if _is_epoch(raw):
                return dt.datetime.fromtimestamp(int(raw) / 1000, dt.UTC).date()
            return _coerce_date(raw)
        if kind is FieldType.DATETIME:
            if _is_epoch(raw):
                return _to_millis(dt.datetime.fromtimestamp(int(raw) / 1000, dt.UTC))
            return _coerce_datetime(raw)
        if kind is FieldType.MULTIPICKLIST:
            return tuple(_split_multi(raw))
        return raw if isinstance(raw, str) else _scalar_text(raw)
    except InvalidValue:
        return raw


def _is_epoch(raw: Any) -> bool:
    """HubSpot's epoch milliseconds, as a number or a string of digits (a bool is neither)."""
    if isinstance(raw, bool):
        return False
    return isinstance(raw, (int, float)) or (isinstance(raw, str) and bool(_EPOCH_MS.match(raw)))


def same_value(current: Any, new: Any, field: FieldSchema) -> bool:
    """Whether the CRM's current value (canonical) equals the value we would send."""
    if _empty(current) and _empty(new):
        return True
    if _empty(current) or _empty(new):
        return False
    if field.type is FieldType.MULTIPICKLIST:
        return set(_as_tuple(current)) == set(_as_tuple(new))
    if field.type in (FieldType.INTEGER, FieldType.NUMBER):
        try:
            return Decimal(str(current)) == Decimal(str(new))
        except InvalidOperation:
            return False
    if field.type in _TEXT_TYPES and isinstance(current, str) and isinstance(new, str):
        # CRMs store line breaks as \n whatever was sent.
        return _newlines(current) == _newlines(new)
    return current == new


def is_empty(value: Any) -> bool:
    """Whether a canonical current value is empty (for the ``fill_empty`` policy)."""
    return _empty(value)


def comparable(value: Any) -> Any:
    """A hashable form of a raw extracted value, for "do two extractions agree?".

    Numbers and numeric strings compare numerically, strings ignore
    surrounding blanks, lists compare item by item.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float, Decimal)):
        return _comparable_number(Decimal(repr(value)) if isinstance(value, float) else Decimal(value))
    if isinstance(value, str):
        text = value.strip()
        # Numeric strings as coerce() reads them, grouping included ("12,500").
        digits = text.replace(",", "") if _GROUPED_NUMBER.match(text) else text
        if _PLAIN_NUMBER.match(digits):
            return _comparable_number(Decimal(digits))
        return ("str", text)
    if isinstance(value, (list, tuple)):
        return ("list", tuple(comparable(item) for item in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), comparable(v)) for k, v in value.items())))
    return ("other", repr(value))


def _comparable_number(number: Decimal) -> tuple[str, Any]:
    """A number's exact value as a hashable key: 12500, 12500.0 and 1.25E+4 agree.

    Built from the digits rather than ``normalize()``, which rounds to the
    context's 28 digits and overflows on exponents like 1e999999999.
    """
    if not number.is_finite():
        # NaN never equals itself; keyed by text so two NaNs (or infinities) agree.
        return ("nonfinite", str(number))
    if not number:
        return ("num", (0, "0", 0))
    sign, digits, exponent = number.as_tuple()
    text = "".join(map(str, digits))
    stripped = text.rstrip("0")
    return ("num", (sign, stripped, exponent + len(text) - len(stripped)))


# -- helpers ---------------------------------------------------------------


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, (dict, list, tuple)):
        raise InvalidValue(f"{_show(value)} is not a single value")
    return str(value).strip()


def _coerce_text(value: Any, field: FieldSchema) -> str:
    if isinstance(value, (list, tuple)):
        text = ", ".join(_scalar_text(item) for item in value if not is_null(item))
    elif isinstance(value, str):
        text = value.strip()
    else:
        text = _scalar_text(value)
    if field.max_length is not None and len(text) > field.max_length:
        raise InvalidValue(f"text of {len(text)} characters is longer than the field's {field.max_length}")
    if field.pattern is not None and text and not re.fullmatch(field.pattern, text):
        raise InvalidValue(f"{_show(text)} is not a valid {field.crm_type or 'value'} for {field.name}")
    return text


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        folded = value.strip().casefold()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
    raise InvalidValue(f"{_show(value)} is not a boolean (true/false/yes/no/y/n/1/0)")


def _coerce_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise InvalidValue(f"{_show(value)} is not a number")
    if isinstance(value, (int, Decimal)):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if _GROUPED_NUMBER.match(text):
            text = text.replace(",", "")
        if not _PLAIN_NUMBER.match(text):
            raise InvalidValue(f"{_show(value)} is not a number")
        number = Decimal(text)
    else:
        raise InvalidValue(f"{_show(value)} is not a number")
    if not number.is_finite():
        raise InvalidValue(f"{_show(value)} is not a finite number")
    if number and number.adjusted() >= _MAX_DIGITS:
        raise InvalidValue(f"{_show(value)} is too large for a CRM number")
    return number


def _check_range(number: Decimal, field: FieldSchema) -> None:
    if field.precision is None:
        return
    integer_digits = field.precision - (field.scale or 0)
    whole = number.to_integral_value(rounding=ROUND_DOWN).copy_abs()  # abs() would round to 28 digits
    # Count digits with adjusted(), not len(str()): str() of 1E+20 is 5 characters.
    if whole and whole.adjusted() + 1 > integer_digits:
        raise InvalidValue(f"{_show(_plain(number))} has more than {integer_digits} digits before the decimal point")


def _round(number: Decimal, scale: int) -> Decimal:
    """``number`` rounded half up to ``scale`` decimals; ``InvalidValue`` when it has too many digits."""
    try:
        return number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than Decimal's context holds: no CRM stores that
        raise InvalidValue(f"{_show(_plain(number))} has too many digits for the field") from None


def _plain(number: Decimal) -> str:
    return format(number, "f")


def _parse_iso(text: str) -> dt.date | dt.datetime:
    text = text.strip()
    if len(text) == 10:
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    candidate = text.replace("Z", "+00:00").replace("z", "+00:00")
    # Salesforce writes offsets as +0000; Python wants +00:00.
    candidate = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", candidate)
    try:
        return dt.datetime.fromisoformat(candidate)
    except ValueError:
        raise InvalidValue(f"{_show(text)} is not an ISO 8601 date or date-time") from None


def _coerce_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return _utc(value).date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise InvalidValue(f"{_show(value)} is not a date")
    parsed = _parse_iso(value)
    if isinstance(parsed, dt.datetime):
        return _utc(parsed).date()
    return parsed


def _coerce_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return _to_millis(_utc(value))
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if not isinstance(value, str):
        raise InvalidValue(f"{_show(value)} is not a date-time")
    parsed = _parse_iso(value)
    if not isinstance(parsed, dt.datetime):
        return dt.datetime(parsed.year, parsed.month, parsed.day, tzinfo=dt.UTC)
    return _to_millis(_utc(parsed))


def _truncate_seconds(value: dt.datetime, digits: int | None) -> dt.datetime:
    """Keep ``digits`` digits of fractional seconds (None: milliseconds)."""
    if digits is None or digits >= 3:
        return value
    step = 10 ** (6 - max(digits, 0))
    return value.replace(microsecond=value.microsecond // step * step)


def _utc(value: dt.datetime) -> dt.datetime:
    """Naive date-times are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _to_millis(value: dt.datetime) -> dt.datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _active(options: Iterable[Option]) -> list[Option]:
    return [option for option in options if option.active]


def _match_option(text: str, field: FieldSchema) -> str:
    options = _active(field.options)
    for option in options:
        if option.value == text:
            return option.value
    folded = text.casefold()
    by_value = [o for o in options if o.value.casefold() == folded]
    if len(by_value) == 1:
        return by_value[0].value
    if len(by_value) > 1:  # "hot" against values "Hot" and "HOT": guessing would pick one silently
        raise InvalidValue(f"{text!r} matches several options: {', '.join(sorted(o.value for o in by_value))}")
    by_label = [o for o in options if o.label.casefold() == folded]
    values = {o.value for o in by_label}
    if len(values) == 1:
        return by_label[0].value
    if len(values) > 1:
        raise InvalidValue(f"{text!r} matches several options: {', '.join(sorted(values))}")
    if field.restricted:
        shown = ", ".join(o.label or o.value for o in options[:12])
        more = ", ..." if len(options) > 12 else ""
        raise InvalidValue(f"{text!r} is not an option of {field.name} ({shown}{more})")
    return text


def _split_multi(value: Any) -> list[str]:
    """The items of a multi-select: a list's items or a ``;``-joined string's parts.

    A list item holding ``a;b`` is two items, as the CRM would read it.
    """
    texts = [_scalar_text(item) for item in value if not is_null(item)] if isinstance(value, (list, tuple)) else [
        _scalar_text(value)
    ]
    return [part.strip() for text in texts for part in text.split(";") if part.strip()]


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == () or value == []


def _as_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return tuple(_split_multi(value))


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


# Each writable field type and how a value becomes its canonical form (OTHER is not written).
_COERCERS: dict[FieldType, Any] = {
    FieldType.STRING: _coerce_text,
    FieldType.TEXT: _coerce_text,
    FieldType.BOOLEAN: lambda value, field: _coerce_bool(value),
    FieldType.INTEGER: _coerce_integer,
    FieldType.NUMBER: _coerce_number,
    FieldType.DATE: lambda value, field: _coerce_date(value),
    FieldType.DATETIME: lambda value, field: _truncate_seconds(_coerce_datetime(value), field.scale),
    FieldType.PICKLIST: _coerce_picklist,
    FieldType.MULTIPICKLIST: _coerce_multipicklist,
}
