"""Pure tests of worker.pipeline.coercion: extracted values into CRM-neutral field types,
CRM current values into the same canonical form, and comparisons (DESIGN §2, §5)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connectors.base import FieldSchema, FieldType, Option
from worker.pipeline.coercion import (
    InvalidValue,
    coerce,
    comparable,
    is_empty,
    is_null,
    parse_current,
    same_value,
)
from worker.report import to_json

UTC = dt.UTC


def schema(kind: FieldType, **kwargs) -> FieldSchema:
    return FieldSchema(name=kwargs.pop("name", "Field__c"), type=kind, **kwargs)


TEXT = schema(FieldType.TEXT)
STRING = schema(FieldType.STRING, max_length=10)
BOOLEAN = schema(FieldType.BOOLEAN)
INTEGER = schema(FieldType.INTEGER)
NUMBER = schema(FieldType.NUMBER)
CURRENCY = schema(FieldType.NUMBER, precision=18, scale=2)
DATE = schema(FieldType.DATE)
DATETIME = schema(FieldType.DATETIME)
STAGES = (
    Option("Prospecting", "Prospecting"),
    Option("closedwon", "Closed Won"),
    Option("closedlost", "Closed Lost"),
    Option("Retired", "Retired Stage", active=False),
)
RESTRICTED = schema(FieldType.PICKLIST, name="StageName", options=STAGES, restricted=True)
UNRESTRICTED = schema(FieldType.PICKLIST, name="StageName", options=STAGES, restricted=False)
COLOURS = (Option("red", "Red"), Option("green", "Green"), Option("blue", "Blue"), Option("old", "Old", active=False))
MULTI = schema(FieldType.MULTIPICKLIST, options=COLOURS, restricted=True)
MULTI_OPEN = schema(FieldType.MULTIPICKLIST, options=COLOURS, restricted=False)


# -- is_null -------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "  ", "\n\t", [], (), [None, ""], ["  "]])
def test_null_values(value):
    assert is_null(value)


@pytest.mark.parametrize("value", [0, False, "0", "no", ["a"], [None, "a"], Decimal(0), {}])
def test_values_that_are_not_null(value):
    assert not is_null(value)


@pytest.mark.parametrize("kind", list(FieldType))
def test_null_coerces_to_none_for_every_type(kind):
    assert coerce("   ", schema(kind)) is None
    assert coerce(None, schema(kind)) is None


# -- booleans ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["true", "TRUE", "True", "yes", "YES", "Yes", "y", "Y", "1", " yes "])
def test_boolean_true_spellings(text):
    assert coerce(text, BOOLEAN) is True


@pytest.mark.parametrize("text", ["false", "FALSE", "False", "no", "NO", "No", "n", "N", "0", " n "])
def test_boolean_false_spellings(text):
    assert coerce(text, BOOLEAN) is False


@pytest.mark.parametrize("value,expected", [(True, True), (False, False), (1, True), (0, False), (1.0, True)])
def test_boolean_from_json_values(value, expected):
    assert coerce(value, BOOLEAN) is expected


@pytest.mark.parametrize("value", ["maybe", "t", "f", "2", 2, -1, 0.5, "yess", ["yes"], {"a": 1}])
def test_boolean_invalid(value):
    with pytest.raises(InvalidValue, match="not a boolean"):
        coerce(value, BOOLEAN)


# -- integers and numbers ------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [("12", 12), (" 12 ", 12), ("+12", 12), ("-12", -12), ("12,500", 12500), ("1,234,567", 1234567),
     ("12.0", 12), ("1e3", 1000), (12, 12), (12.0, 12), (Decimal("7"), 7)],
)
def test_integer_from_numbers_and_numeric_strings(value, expected):
    result = coerce(value, INTEGER)
    assert result == expected and type(result) is int


@pytest.mark.parametrize(
    "value,expected",
    [("12500", Decimal("12500")), ("12,500", Decimal("12500")), ("12,500.75", Decimal("12500.75")),
     ("-3.5", Decimal("-3.5")), (".5", Decimal("0.5")), (0.1, Decimal("0.1")), (12500, Decimal("12500")),
     ("1.5e3", Decimal("1500"))],
)
def test_number_from_numbers_and_numeric_strings(value, expected):
    result = coerce(value, NUMBER)
    assert isinstance(result, Decimal) and result == expected


@pytest.mark.parametrize(
    "value",
    ["twelve", "12 500", "$12,500", "12,50", "1,2345", "12.5.1", "NaN", "nan", "inf", "Infinity", "-inf",
     float("nan"), float("inf"), float("-inf"), True, False, [12], {"v": 1}, "0x10"],
)
def test_number_invalid(value):
    with pytest.raises(InvalidValue):
        coerce(value, NUMBER)
    with pytest.raises(InvalidValue):
        coerce(value, INTEGER)


def test_integer_rejects_fractions_instead_of_truncating():
    with pytest.raises(InvalidValue, match="whole number"):
        coerce("12.5", INTEGER)


def test_number_is_rounded_to_the_field_scale_half_up():
    assert coerce("12500.555", CURRENCY) == Decimal("12500.56")
    assert coerce("12500.554", CURRENCY) == Decimal("12500.55")
    assert coerce(0.125, CURRENCY) == Decimal("0.13")
    assert coerce("12500", CURRENCY) == Decimal("12500.00")
    assert coerce("2.5", schema(FieldType.NUMBER, scale=0)) == Decimal("3")


def test_rounded_number_compares_equal_to_what_the_crm_then_stores():
    sent = coerce("12500.555", CURRENCY)
    stored = parse_current(12500.56, CURRENCY)  # Salesforce returns a JSON double
    assert same_value(stored, sent, CURRENCY)


def test_number_within_precision_is_accepted():
    field = schema(FieldType.NUMBER, precision=5, scale=2)
    assert coerce("999.99", field) == Decimal("999.99")
    assert coerce("-999.99", field) == Decimal("-999.99")
    assert coerce("0.001", field) == Decimal("0.00")


@pytest.mark.parametrize("value", ["1000", "1000.00", "-1000", "99999", "999.999"])
def test_number_over_precision_is_invalid(value):
    # precision 5, scale 2: three digits before the point (999.999 rounds to 1000.00)
    field = schema(FieldType.NUMBER, precision=5, scale=2)
    with pytest.raises(InvalidValue, match="digits"):
        coerce(value, field)


def test_precision_counts_digits_not_characters_of_exponent_notation():
    field = schema(FieldType.NUMBER, precision=18)  # scale unknown
    with pytest.raises(InvalidValue, match="digits"):
        coerce("1e20", field)  # 21 digits
    assert coerce("1.5e3", schema(FieldType.NUMBER, precision=4)) == Decimal(1500)
    assert coerce("1.5e3", schema(FieldType.INTEGER, precision=4)) == 1500
    with pytest.raises(InvalidValue, match="digits"):
        coerce("1e9", schema(FieldType.INTEGER, precision=9))


def test_huge_numbers_are_invalid_not_a_crash():
    with pytest.raises(InvalidValue):
        coerce("1e30", CURRENCY)
    with pytest.raises(InvalidValue):
        coerce("1e999999999", INTEGER)
    with pytest.raises(InvalidValue):
        coerce("1e999999999", NUMBER)


# -- dates and date-times -------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2024-05-01", dt.date(2024, 5, 1)),
        (" 2024-05-01 ", dt.date(2024, 5, 1)),
        ("2024-05-01T23:30:00-05:00", dt.date(2024, 5, 2)),  # 04:30 UTC the next day
        ("2024-05-01T01:00:00+02:00", dt.date(2024, 4, 30)),
        ("2024-05-01T10:00:00Z", dt.date(2024, 5, 1)),
        ("2024-05-01T23:59:59", dt.date(2024, 5, 1)),  # naive: UTC
        ("2024-05-01T10:00:00.000+0000", dt.date(2024, 5, 1)),
        (dt.date(2024, 5, 1), dt.date(2024, 5, 1)),
        (dt.datetime(2024, 5, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))), dt.date(2024, 5, 2)),
    ],
)
def test_date_values(value, expected):
    result = coerce(value, DATE)
    assert result == expected and type(result) is dt.date


@pytest.mark.parametrize("value", ["01/05/2024", "May 1st", "2024-13-01", "2024-02-30", "tomorrow", 20240501, True])
def test_date_invalid(value):
    with pytest.raises(InvalidValue):
        coerce(value, DATE)


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2024-05-01T10:00:00Z", dt.datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00z", dt.datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00+02:00", dt.datetime(2024, 5, 1, 8, tzinfo=UTC)),
        ("2024-05-01T10:00:00-0500", dt.datetime(2024, 5, 1, 15, tzinfo=UTC)),
        ("2024-05-01T10:00:00", dt.datetime(2024, 5, 1, 10, tzinfo=UTC)),  # naive: UTC
        ("2024-05-01T10:00:00.123456Z", dt.datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)),
        ("2024-05-01", dt.datetime(2024, 5, 1, tzinfo=UTC)),
        (dt.datetime(2024, 5, 1, 10, 0, 0, 999999), dt.datetime(2024, 5, 1, 10, 0, 0, 999000, tzinfo=UTC)),
    ],
)
def test_datetime_values_are_aware_utc_to_the_millisecond(value, expected):
    result = coerce(value, DATETIME)
    assert result == expected
    assert result.utcoffset() == dt.timedelta(0)
    assert result.microsecond % 1000 == 0


@pytest.mark.parametrize("value", ["10:00", "2024-05-01 at noon", "2024-05-01T25:00:00Z", 1714557600000])
def test_datetime_invalid(value):
    with pytest.raises(InvalidValue):
        coerce(value, DATETIME)


# -- picklists -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [("closedwon", "closedwon"), ("CLOSEDWON", "closedwon"), ("Closed Won", "closedwon"), ("closed won", "closedwon"),
     ("  closed won ", "closedwon"), ("prospecting", "Prospecting"), (["Closed Lost"], "closedlost")],
)
def test_picklist_matches_value_or_label_and_sends_the_value(value, expected):
    assert coerce(value, RESTRICTED) == expected
    assert coerce(value, UNRESTRICTED) == expected


def test_inactive_option_never_matches():
    with pytest.raises(InvalidValue, match="not an option"):
        coerce("Retired", RESTRICTED)
    with pytest.raises(InvalidValue, match="not an option"):
        coerce("retired stage", RESTRICTED)


def test_restricted_picklist_without_match_is_invalid_and_lists_options():
    with pytest.raises(InvalidValue) as info:
        coerce("Negotiation", RESTRICTED)
    message = str(info.value)
    assert "Negotiation" in message and "Closed Won" in message and "Retired" not in message


def test_unrestricted_picklist_takes_the_value_as_given():
    assert coerce("Negotiation", UNRESTRICTED) == "Negotiation"


def test_ambiguous_label_is_invalid():
    field = schema(FieldType.PICKLIST, options=(Option("a", "Hot"), Option("b", "hot")), restricted=False)
    with pytest.raises(InvalidValue, match="several options"):
        coerce("HOT", field)
    # an exact value still wins over labels
    assert coerce("a", field) == "a"


def test_ambiguous_value_in_any_case_is_invalid():
    field = schema(FieldType.PICKLIST, options=(Option("Hot", "Warm one"), Option("HOT", "Hot one")), restricted=True)
    assert coerce("HOT", field) == "HOT"  # exact match
    with pytest.raises(InvalidValue, match="several options"):
        coerce("hot", field)


def test_picklist_takes_one_value():
    with pytest.raises(InvalidValue, match="one"):
        coerce(["closedwon", "closedlost"], RESTRICTED)


def test_picklist_from_a_number_or_boolean():
    field = schema(FieldType.PICKLIST, options=(Option("1", "One"), Option("true", "Yes")), restricted=True)
    assert coerce(1, field) == "1"
    assert coerce(1.0, field) == "1"
    assert coerce(True, field) == "true"


@pytest.mark.parametrize(
    "value,expected",
    [(["red", "Green"], ("red", "green")), ("red;green", ("red", "green")), ("Red ; BLUE", ("red", "blue")),
     (["red", "RED", "Red"], ("red",)), ("red;red;green", ("red", "green")), (["blue", "red"], ("blue", "red")),
     ("green", ("green",)), (["red;blue"], ("red", "blue"))],
)
def test_multipicklist(value, expected):
    assert coerce(value, MULTI) == expected


def test_multipicklist_restricted_unknown_item_is_invalid():
    with pytest.raises(InvalidValue, match="purple"):
        coerce(["red", "purple"], MULTI)
    with pytest.raises(InvalidValue, match="not an option"):
        coerce("red;old", MULTI)  # inactive


def test_multipicklist_unrestricted_keeps_unknown_items():
    assert coerce("red;purple", MULTI_OPEN) == ("red", "purple")


def test_multipicklist_of_only_separators_is_null():
    assert coerce(" ; ;", MULTI) is None


# -- text ------------------------------------------------------------------------


def test_text_within_max_length():
    assert coerce("0123456789", STRING) == "0123456789"
    assert coerce("  padded  ", STRING) == "padded"


def test_text_longer_than_max_length_is_invalid_never_cut():
    with pytest.raises(InvalidValue, match="11 characters.*10"):
        coerce("0123456789X", STRING)


def test_list_into_text_is_joined():
    assert coerce(["alpha", "beta", None, " "], TEXT) == "alpha, beta"
    with pytest.raises(InvalidValue):
        coerce(["alpha", "beta", "gamma"], STRING)  # 18 characters joined


@pytest.mark.parametrize(
    "value,expected",
    [(12500, "12500"), (12500.0, "12500"), (0.5, "0.5"), (True, "true"), (Decimal("1.50"), "1.5")],
)
def test_scalars_into_text(value, expected):
    assert coerce(value, TEXT) == expected


def test_object_into_text_is_invalid():
    with pytest.raises(InvalidValue):
        coerce({"a": 1}, TEXT)


def test_other_type_is_never_written():
    field = schema(FieldType.OTHER, crm_type="address")
    with pytest.raises(InvalidValue, match="address"):
        coerce("1 Main St", field)


# -- parse_current and same_value --------------------------------------------------


def test_salesforce_double_equals_our_decimal():
    current = parse_current(12500.0, NUMBER)
    assert same_value(current, Decimal("12500"), NUMBER)
    assert same_value(parse_current(12500.0, INTEGER), 12500, INTEGER)
    assert not same_value(current, Decimal("12500.01"), NUMBER)


def test_hubspot_number_strings():
    assert same_value(parse_current("12500", NUMBER), coerce("12,500", NUMBER), NUMBER)
    assert same_value(parse_current("12500.50", CURRENCY), coerce("12500.5", CURRENCY), CURRENCY)
    assert parse_current("", NUMBER) is None


def test_salesforce_datetime_with_plus_0000():
    current = parse_current("2024-05-01T10:00:00.000+0000", DATETIME)
    assert current == dt.datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert same_value(current, coerce("2024-05-01T12:00:00+02:00", DATETIME), DATETIME)


def test_hubspot_epoch_milliseconds():
    assert parse_current("1714521600000", DATE) == dt.date(2024, 5, 1)
    assert parse_current(1714521600000, DATE) == dt.date(2024, 5, 1)
    assert parse_current("1714557600123", DATETIME) == dt.datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert same_value(parse_current("1714557600000", DATETIME), coerce("2024-05-01T10:00:00Z", DATETIME), DATETIME)


def test_iso_dates_from_the_crm():
    current = parse_current("2024-05-01", DATE)
    assert current == dt.date(2024, 5, 1)
    assert same_value(current, coerce("2024-05-01T10:00:00Z", DATE), DATE)
    # 23:30 at -05:00 is the next day in UTC: a different date, so it is written
    assert not same_value(current, coerce("2024-05-01T23:30:00-05:00", DATE), DATE)


def test_a_boolean_is_not_an_epoch():
    assert parse_current(True, DATE) is True
    assert not same_value(parse_current(True, DATE), dt.date(1970, 1, 1), DATE)


def test_unparseable_current_number_differs():
    assert parse_current("n/a", NUMBER) == "n/a"
    assert not same_value(parse_current("n/a", NUMBER), Decimal(1), NUMBER)


@pytest.mark.parametrize("raw,expected", [("true", True), ("false", False), (True, True), (False, False)])
def test_boolean_strings_from_the_crm(raw, expected):
    assert parse_current(raw, BOOLEAN) is expected
    assert same_value(parse_current(raw, BOOLEAN), coerce("yes" if expected else "no", BOOLEAN), BOOLEAN)


def test_false_is_a_value_not_empty():
    assert not same_value(None, False, BOOLEAN)
    assert not is_empty(False)
    assert not is_empty(Decimal(0))


def test_multiselect_order_does_not_matter():
    current = parse_current("green;red", MULTI)
    assert same_value(current, coerce(["red", "green"], MULTI), MULTI)
    assert not same_value(current, coerce(["red"], MULTI), MULTI)
    assert not same_value(current, coerce(["red", "green", "blue"], MULTI), MULTI)


def test_text_line_endings_compare_equal():
    assert same_value("line one\nline two", coerce("line one\r\nline two", TEXT), TEXT)
    assert not same_value("line one\nline two", "line one line two", TEXT)


def test_text_comparison_is_case_sensitive():
    assert not same_value("Acme", "ACME", TEXT)


def test_picklist_current_value_compares_with_the_matched_option():
    assert same_value(parse_current("closedwon", RESTRICTED), coerce("Closed Won", RESTRICTED), RESTRICTED)


def test_empty_values_compare():
    assert same_value(None, None, TEXT)
    assert same_value(parse_current("", TEXT), None, TEXT)
    assert not same_value(None, "x", TEXT)
    assert not same_value("x", None, TEXT)
    assert is_empty(None) and is_empty("") and is_empty(()) and not is_empty("x")


def test_unparseable_current_value_is_kept_and_differs():
    raw = "not a date"
    assert parse_current(raw, DATE) == raw
    assert not same_value(parse_current(raw, DATE), dt.date(2024, 5, 1), DATE)


# -- to_json and comparable ---------------------------------------------------------


def test_to_json():
    assert to_json(Decimal("12500.00")) == 12500 and type(to_json(Decimal("12500.00"))) is int
    assert to_json(Decimal("12500.5")) == 12500.5
    assert to_json(dt.date(2024, 5, 1)) == "2024-05-01"
    assert to_json(dt.datetime(2024, 5, 1, 10, tzinfo=UTC)) == "2024-05-01T10:00:00Z"
    assert to_json(("red", "green")) == ["red", "green"]
    assert to_json({"a": Decimal(1), 2: [dt.date(2024, 1, 2)]}) == {"a": 1, "2": ["2024-01-02"]}
    assert to_json(None) is None and to_json(True) is True and to_json("x") == "x"


@pytest.mark.parametrize(
    "a,b",
    [("12500", 12500), (12500, 12500.0), ("12500.0", Decimal("12500")), (" yes ", "yes"), ([1, "2"], ["1", 2]),
     ("12,500", 12500), (True, True)],
)
def test_comparable_equal(a, b):
    assert comparable(a) == comparable(b)
    assert hash(comparable(a)) == hash(comparable(b))


@pytest.mark.parametrize(
    "a,b",
    [("12500", 12501), ("Yes", "yes"), (True, 1), (True, "true"), (["a", "b"], ["b", "a"]), ("a", ["a"])],
)
def test_comparable_different(a, b):
    assert comparable(a) != comparable(b)


def test_comparable_non_finite_numbers_are_equal_to_themselves():
    assert comparable(float("nan")) == comparable(float("nan"))
    assert comparable(float("inf")) == comparable(float("inf"))


def test_comparable_is_exact_beyond_28_digits():
    assert comparable("0." + "1" * 40) != comparable("0." + "1" * 39)
    assert comparable("1" + "0" * 40) == comparable(Decimal("1E+40"))


@pytest.mark.parametrize("value", ["1e999999999", "-1e999999999", "1e-999999999", 10**400])
def test_comparable_of_absurd_numbers_does_not_raise(value):
    assert comparable(value) == comparable(value)
    assert comparable(value) != comparable(0)


class TestPattern:
    """A field's pattern (record ids, emails) is checked before any request."""

    REFERENCE = FieldSchema("AccountId", FieldType.STRING, max_length=18, crm_type="reference",
                            pattern=r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")

    def test_a_record_id_passes(self):
        assert coerce("0015g000000DSvSAAW", self.REFERENCE) == "0015g000000DSvSAAW"

    def test_a_name_where_an_id_belongs_is_invalid(self):
        with pytest.raises(InvalidValue, match="'Acme Roofing' is not a valid reference for AccountId"):
            coerce("Acme Roofing", self.REFERENCE)
