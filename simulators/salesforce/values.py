"""Field values: how Salesforce parses them from JSON, validates them per record, and stores them.

Two stages, as in a real org. JSON deserialisation (``deserialize``) rejects a
value of the wrong JSON kind for the field's type; that fails the whole
request with ``JSON_PARSER_ERROR``. Validation (``field_errors``) then checks
the parsed value (required, restricted picklists, length, references, email,
numeric range) and yields a per-record error. Datetimes are stored in UTC
with whole seconds, as the API returns them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from simulators.salesforce.errors import record_error
from simulators.salesforce.ids import to_id18
from simulators.salesforce.schema import INT_TYPES, NUMBER_TYPES, STRING_TYPES, SFField

if TYPE_CHECKING:
    from simulators.salesforce.state import SalesforceState

_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def format_datetime(value: dt.datetime) -> str:
    """A datetime as Salesforce stores and returns it: UTC, whole seconds (sent milliseconds are dropped)."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S") + ".000+0000"


def _parse_date(text: str) -> dt.date | None:
    match = _DATE_RE.match(text)
    if not match:
        return None
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _parse_datetime(text: str) -> dt.datetime | None:
    match = _DATETIME_RE.match(text)
    if not match:
        return None
    year, month, day, hour, minute = (int(match[i]) for i in range(1, 6))
    second = int(match[6] or 0)
    micro = int((match[7] or "0").ljust(6, "0")[:6])
    zone = match[8]
    if zone in (None, "Z"):
        tz = dt.UTC
    else:
        digits = zone[1:].replace(":", "")
        offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        tz = dt.timezone(offset if zone[0] == "+" else -offset)
    try:
        return dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        return None


def stored(item: SFField, value: Any) -> Any:
    """A seed value in the form the API returns it (no validation)."""
    if value is None:
        return None
    if item.type in NUMBER_TYPES:
        return float(value)
    if item.type in INT_TYPES:
        return int(value)
    if item.type == "datetime" and isinstance(value, str):
        parsed = _parse_datetime(value)
        return format_datetime(parsed) if parsed else value
    if item.type == "multipicklist" and isinstance(value, (list, tuple)):
        return ";".join(value)
    return value


def json_kind(value: Any) -> str:
    """The name Salesforce's JSON parser gives a value's kind in its messages."""
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int):
        return "VALUE_NUMBER_INT"
    if isinstance(value, float):
        return "VALUE_NUMBER_FLOAT"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, dict):
        return "START_OBJECT"
    return "VALUE_NULL"


class ParseError(Exception):
    """A value the JSON parser refuses; ``value`` helps point at its column."""

    def __init__(self, message: str, value: Any = None) -> None:
        super().__init__(message)
        self.value = value


def deserialize(item: SFField, value: Any) -> Any:
    """Salesforce's JSON deserialisation of one field: the parsed value, or ParseError."""
    if value is None:
        return None
    kind = json_kind(value)
    bad = ParseError(f"Cannot deserialize instance of {item.type} from {kind} value "
                     f"{value if not isinstance(value, (list, dict)) else json.dumps(value)[:40]}", value)
    if isinstance(value, (list, dict)):
        raise bad
    if item.type == "boolean":
        if not isinstance(value, bool):
            raise bad
        return value
    if item.type in INT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if item.type in NUMBER_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad
        return value
    if item.type == "date":
        parsed = _parse_date(value) if isinstance(value, str) else None
        if parsed is None:
            raise bad
        return parsed.isoformat()
    if item.type == "datetime":
        parsed = _parse_datetime(value) if isinstance(value, str) else None
        if parsed is None:
            raise bad
        return format_datetime(parsed)
    if not isinstance(value, str):
        raise bad
    return value


# ------------------------------------------------------------------ per-record validation

FieldResult = tuple[Any, dict[str, Any] | None]


def field_errors(item: SFField, value: Any, state: SalesforceState | None = None) -> FieldResult:
    """Per-record validation of one deserialised value: (value to store, error or None)."""
    if item.type == "reference" and value == "":
        value = None
    if value is None:
        return _null(item)
    error = _picklist_error(item, value) or _length_error(item, value)
    if error is not None:
        return None, error
    if item.type == "reference" and state is not None:
        return _reference(item, value, state)
    if item.type == "email" and value and not _EMAIL_RE.match(value):
        return None, _error(item, "INVALID_EMAIL_ADDRESS", f"{_label(item)}: invalid email address: {value}")
    if item.type in NUMBER_TYPES:
        return _number(item, value)
    if item.type in INT_TYPES and _int_out_of_range(item, value):
        return None, _out_of_range(item, value)
    return value, None


def _label(item: SFField) -> str:
    return item.label or item.name


def _error(item: SFField, code: str, message: str) -> dict[str, Any]:
    return record_error(code, message, [item.name])


def _out_of_range(item: SFField, value: Any) -> dict[str, Any]:
    return _error(item, "NUMBER_OUTSIDE_VALID_RANGE",
                  f"{_label(item)}: value outside of valid range on numeric field: {value}")


def _null(item: SFField) -> FieldResult:
    if item.type == "boolean":
        return False, None  # a checkbox cannot be null: the API stores false
    if not item.nillable:
        return None, _error(item, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{item.name}]")
    return None, None


def _picklist_error(item: SFField, value: Any) -> dict[str, Any] | None:
    """Only restricted picklists refuse values outside their active ones (inactive values included)."""
    if item.type not in ("picklist", "multipicklist") or not item.restricted_picklist:
        return None
    active = {p.value for p in item.picklist_values if p.active}
    chosen = value.split(";") if item.type == "multipicklist" else [value]
    for one in chosen:
        if one not in active:
            return _error(item, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                          f"{_label(item)}: bad value for restricted picklist field: {one}")
    return None


def _length_error(item: SFField, value: Any) -> dict[str, Any] | None:
    if item.type in STRING_TYPES and item.length and len(value) > item.length:
        shown = value if len(value) <= 40 else value[:37] + "..."
        return _error(item, "STRING_TOO_LONG",
                      f"{_label(item)}: data value too large: {shown} (max length={item.length})")
    return None


def _reference(item: SFField, value: Any, state: SalesforceState) -> FieldResult:
    """A reference must name a live record of one of the objects it may point to."""
    canonical = to_id18(value)
    targets = [state.objects[name] for name in item.reference_to if name in state.objects]
    if canonical is None or not any(canonical.startswith(t.key_prefix) for t in targets):
        return None, _error(item, "MALFORMED_ID", f"{_label(item)}: id value of incorrect type: {value}")
    if not any(canonical in state.records.get(t.name, {}) for t in targets):
        return None, _error(item, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
    return canonical, None


def _number(item: SFField, value: Any) -> FieldResult:
    """Rounded to the field's scale (half up), then the whole digits must fit precision - scale."""
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:  # pragma: no cover - finite floats always convert
        return None, _out_of_range(item, value)
    number = number.quantize(Decimal(1).scaleb(-item.scale), rounding=ROUND_HALF_UP) if item.scale >= 0 else number
    whole = abs(int(number))
    if item.precision and whole and len(str(whole)) > item.precision - item.scale:
        return None, _out_of_range(item, value)
    return float(number), None


def _int_out_of_range(item: SFField, value: Any) -> bool:
    limit = 10 ** (item.digits or 9)
    return abs(value) >= limit or abs(value) > 2**31 - 1 and item.type == "int"
