"""CDM `${...}` placeholders (cdm spec §7): user variables, dateformat and timestamp built-ins.

Every expected value below was worked out by hand, not produced by the module. The base instant
is 2026-03-31T14:05:09.123Z, whose epoch milliseconds are 1774965909123:
1970-01-01 .. 2026-01-01 is 56 * 365 + 14 leap days = 20454 days, and Jan 31 + Feb 28 + 30 more
gives 20543 days = 1774915200 s at midnight, plus 14:05:09 = 50709 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobstore.api.cdm.variables import BadPlaceholder, UnresolvedVariable, placeholders, resolve
from jobstore.domain.errors import BadRequest

NOW = datetime(2026, 3, 31, 14, 5, 9, 123000, tzinfo=UTC)
NOW_MS = 1774965909123
MIDNIGHT_MS = 1774915200000  # 2026-03-31T00:00:00Z
SECOND_MS, MINUTE_MS, HOUR_MS, DAY_MS = 1000, 60_000, 3_600_000, 86_400_000


def r(text: str, variables: Mapping[str, str] | None = None, now: datetime = NOW) -> str:
    return resolve(text, variables or {}, now)


# -- text without placeholders ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain text",
        "/data/in/file.csv",
        "price: $5 {each}",
        "$region",
        "$ {region}",
        "a } b { c",
        "SELECT * FROM t WHERE a = '$'",
    ],
)
def test_text_without_placeholders_is_unchanged(text: str) -> None:
    assert r(text, {"region": "eu"}) == text


# -- user variables -----------------------------------------------------------------------------


def test_user_variable_is_substituted() -> None:
    assert r("${region}", {"region": "eu-west-0"}) == "eu-west-0"


def test_user_variable_inside_text() -> None:
    assert r("obs://bucket/${region}/in.csv", {"region": "cn-north-4"}) == (
        "obs://bucket/cn-north-4/in.csv"
    )


def test_variable_names_with_underscores_and_digits() -> None:
    variables = {"job_param_1": "x", "_p": "y", "A9": "z"}
    assert r("${job_param_1}/${_p}/${A9}", variables) == "x/y/z"


def test_empty_variable_value() -> None:
    assert r("a${empty}b", {"empty": ""}) == "ab"


def test_variable_names_are_case_sensitive() -> None:
    assert r("${Region}-${region}", {"region": "lower", "Region": "upper"}) == "upper-lower"


def test_unused_variables_are_ignored() -> None:
    assert r("${a}", {"a": "1", "b": "2", "c": "3"}) == "1"


def test_same_variable_twice_and_adjacent_placeholders() -> None:
    assert r("${a}${b}${a}", {"a": "1", "b": "2"}) == "121"


def test_variable_value_with_placeholder_is_not_re_expanded() -> None:
    variables = {"a": "${b}", "b": "B"}
    assert r("${a}", variables) == "${b}"


def test_variable_value_with_builtin_or_unknown_placeholder_is_kept_literally() -> None:
    variables = {"a": "${dateformat(yyyy)}", "b": "${nobody}", "c": "${"}
    assert r("${a}|${b}|${c}", variables) == "${dateformat(yyyy)}|${nobody}|${"


def test_closing_brace_after_placeholder_is_literal() -> None:
    assert r("${a}}", {"a": "1"}) == "1}"


def test_unknown_variable_raises_unresolved_variable() -> None:
    with pytest.raises(UnresolvedVariable) as info:
        r("obs://b/${missing}/x", {"present": "1"})
    assert info.value.name == "missing"
    assert "missing" in str(info.value)
    assert isinstance(info.value, BadRequest)


def test_unknown_variable_after_known_ones_is_named() -> None:
    with pytest.raises(UnresolvedVariable) as info:
        r("${a}-${dateformat(yyyy)}-${zone}", {"a": "1"})
    assert info.value.name == "zone"
    assert "'zone'" in str(info.value)


def test_variable_lookup_is_case_sensitive_for_unknowns() -> None:
    with pytest.raises(UnresolvedVariable) as info:
        r("${REGION}", {"region": "eu"})
    assert info.value.name == "REGION"


# -- dateformat: patterns -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("yyyy-MM-dd", "2026-03-31"),
        ("yyyyMMdd", "20260331"),
        ("yyyyMMddHH", "2026033114"),
        ("yyyy", "2026"),
        ("yy", "26"),
        ("yyMMdd", "260331"),
        ("MM", "03"),
        ("dd", "31"),
        ("HH:mm:ss", "14:05:09"),
        ("HHmmss", "140509"),
        ("SSS", "123"),
        ("yyyy-MM-dd HH:mm:ss", "2026-03-31 14:05:09"),
        ("yyyy-MM-dd HH:mm:ss.SSS", "2026-03-31 14:05:09.123"),
        ("yyyy/MM/dd", "2026/03/31"),
        ("dd.MM.yyyy", "31.03.2026"),
        ("yyyy_MM_dd-HH", "2026_03_31-14"),
        ("yyyy-MM-dd'T'HH:mm:ss", "2026-03-31T14:05:09"),
        ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", "2026-03-31T14:05:09.123Z"),
        ("'day' dd 'of' yyyy", "day 31 of 2026"),
        ("'yyyy-MM-dd'", "yyyy-MM-dd"),
        ("M/d H", "3/31 14"),
    ],
)
def test_dateformat_patterns(pattern: str, expected: str) -> None:
    assert r(f"${{dateformat({pattern})}}") == expected


EARLY = datetime(2005, 1, 5, 7, 8, 9, 4000, tzinfo=UTC)  # 2005-01-05T07:08:09.004Z


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("M", "1"),
        ("d", "5"),
        ("H", "7"),
        ("m", "8"),
        ("s", "9"),
        ("S", "4"),
        ("yyyy/M/d H:m:s", "2005/1/5 7:8:9"),
        ("MM/dd HH:mm:ss", "01/05 07:08:09"),
        ("SSS", "004"),
        ("yy", "05"),
        ("yyyyMMdd", "20050105"),
    ],
)
def test_dateformat_single_letters_and_zero_padding(pattern: str, expected: str) -> None:
    assert r(f"${{dateformat({pattern})}}", now=EARLY) == expected


def test_dateformat_ignores_sub_millisecond_digits() -> None:
    now = NOW.replace(microsecond=123999)
    assert r("${dateformat(ss.SSS)}", now=now) == "09.123"


def test_dateformat_tolerates_spaces_around_arguments() -> None:
    assert r("${dateformat( yyyy-MM-dd , -1 , DAY )}") == "2026-03-30"
    assert r("${dateformat(yyyy-MM-dd,-1,DAY)}") == "2026-03-30"


# -- dateformat: shifts by each unit ------------------------------------------------------------

FULL = "yyyy-MM-dd HH:mm:ss"


@pytest.mark.parametrize(
    ("offset", "unit", "expected"),
    [
        (0, "DAY", "2026-03-31 14:05:09"),
        (1, "SECOND", "2026-03-31 14:05:10"),
        (-10, "SECOND", "2026-03-31 14:04:59"),
        (60, "SECOND", "2026-03-31 14:06:09"),
        (86400, "SECOND", "2026-04-01 14:05:09"),
        (1, "MINUTE", "2026-03-31 14:06:09"),
        (-6, "MINUTE", "2026-03-31 13:59:09"),
        (1440, "MINUTE", "2026-04-01 14:05:09"),
        (1, "HOUR", "2026-03-31 15:05:09"),
        (10, "HOUR", "2026-04-01 00:05:09"),
        (-15, "HOUR", "2026-03-30 23:05:09"),
        (1, "DAY", "2026-04-01 14:05:09"),
        (-1, "DAY", "2026-03-30 14:05:09"),
        (-31, "DAY", "2026-02-28 14:05:09"),
        (-365, "DAY", "2025-03-31 14:05:09"),
        (1, "MONTH", "2026-04-30 14:05:09"),
        (-1, "MONTH", "2026-02-28 14:05:09"),
        (-2, "MONTH", "2026-01-31 14:05:09"),
        (-3, "MONTH", "2025-12-31 14:05:09"),
        (-13, "MONTH", "2025-02-28 14:05:09"),
        (10, "MONTH", "2027-01-31 14:05:09"),
        (11, "MONTH", "2027-02-28 14:05:09"),
        (12, "MONTH", "2027-03-31 14:05:09"),
        (-12, "MONTH", "2025-03-31 14:05:09"),
        (1, "YEAR", "2027-03-31 14:05:09"),
        (-1, "YEAR", "2025-03-31 14:05:09"),
        (-26, "YEAR", "2000-03-31 14:05:09"),
        (74, "YEAR", "2100-03-31 14:05:09"),
    ],
)
def test_dateformat_shift(offset: int, unit: str, expected: str) -> None:
    assert r(f"${{dateformat({FULL}, {offset}, {unit})}}") == expected


def test_dateformat_explicit_plus_sign_on_offset() -> None:
    assert r("${dateformat(yyyy-MM-dd, +1, DAY)}") == "2026-04-01"


def test_dateformat_shift_keeps_milliseconds() -> None:
    assert r("${dateformat(HH:mm:ss.SSS, -1, HOUR)}") == "13:05:09.123"


@pytest.mark.parametrize(
    ("now", "offset", "unit", "expected"),
    [
        # Mar 31 minus one month: Feb 29 in a leap year, Feb 28 otherwise.
        (datetime(2028, 3, 31, tzinfo=UTC), -1, "MONTH", "2028-02-29"),
        (datetime(2027, 3, 31, tzinfo=UTC), -1, "MONTH", "2027-02-28"),
        (datetime(2000, 3, 31, tzinfo=UTC), -1, "MONTH", "2000-02-29"),  # 400-year rule
        (datetime(2100, 3, 31, tzinfo=UTC), -1, "MONTH", "2100-02-28"),  # 100-year rule
        (datetime(2026, 1, 31, tzinfo=UTC), 1, "MONTH", "2026-02-28"),
        (datetime(2024, 1, 30, tzinfo=UTC), 1, "MONTH", "2024-02-29"),
        (datetime(2026, 5, 31, tzinfo=UTC), 1, "MONTH", "2026-06-30"),
        (datetime(2026, 12, 31, tzinfo=UTC), 2, "MONTH", "2027-02-28"),
        (datetime(2026, 3, 15, tzinfo=UTC), -1, "MONTH", "2026-02-15"),  # no clamp needed
        # A year from Feb 29 lands on Feb 28 unless the target year is leap too.
        (datetime(2024, 2, 29, tzinfo=UTC), 1, "YEAR", "2025-02-28"),
        (datetime(2024, 2, 29, tzinfo=UTC), -1, "YEAR", "2023-02-28"),
        (datetime(2024, 2, 29, tzinfo=UTC), 4, "YEAR", "2028-02-29"),
        (datetime(2024, 2, 29, tzinfo=UTC), -4, "YEAR", "2020-02-29"),
        (datetime(2024, 2, 29, tzinfo=UTC), 12, "MONTH", "2025-02-28"),
        (datetime(2024, 2, 29, tzinfo=UTC), 48, "MONTH", "2028-02-29"),
        # DAY arithmetic walks through Feb 29 rather than clamping.
        (datetime(2024, 2, 28, tzinfo=UTC), 1, "DAY", "2024-02-29"),
        (datetime(2024, 3, 1, tzinfo=UTC), -1, "DAY", "2024-02-29"),
        (datetime(2026, 3, 1, tzinfo=UTC), -1, "DAY", "2026-02-28"),
    ],
)
def test_month_and_year_shifts_clamp_to_last_valid_day(
    now: datetime, offset: int, unit: str, expected: str
) -> None:
    assert r(f"${{dateformat(yyyy-MM-dd, {offset}, {unit})}}", now=now) == expected


def test_month_shift_keeps_time_of_day() -> None:
    now = datetime(2028, 3, 31, 23, 59, 58, 999000, tzinfo=UTC)
    assert r("${dateformat(yyyy-MM-dd HH:mm:ss.SSS, -1, MONTH)}", now=now) == (
        "2028-02-29 23:59:58.999"
    )


# -- timestamp ----------------------------------------------------------------------------------


def test_timestamp_is_epoch_milliseconds_of_now() -> None:
    assert r("${timestamp()}") == "1774965909123"


def test_timestamp_of_the_epoch_and_a_round_instant() -> None:
    assert r("${timestamp()}", now=datetime(1970, 1, 1, tzinfo=UTC)) == "0"
    assert r("${timestamp()}", now=datetime(2000, 1, 1, tzinfo=UTC)) == "946684800000"


def test_timestamp_truncates_sub_millisecond_digits() -> None:
    assert r("${timestamp()}", now=NOW.replace(microsecond=123999)) == "1774965909123"


@pytest.mark.parametrize(
    ("offset", "unit", "expected"),
    [
        (0, "SECOND", NOW_MS),
        (1, "SECOND", NOW_MS + SECOND_MS),
        (-1, "SECOND", NOW_MS - SECOND_MS),
        (90, "SECOND", NOW_MS + 90 * SECOND_MS),
        (1, "MINUTE", NOW_MS + MINUTE_MS),
        (-30, "MINUTE", NOW_MS - 30 * MINUTE_MS),
        (2, "HOUR", NOW_MS + 2 * HOUR_MS),
        (-2, "HOUR", NOW_MS - 2 * HOUR_MS),
        (1, "DAY", NOW_MS + DAY_MS),
        (-1, "DAY", NOW_MS - DAY_MS),
        (-7, "DAY", NOW_MS - 7 * DAY_MS),
        (1, "MONTH", NOW_MS + 30 * DAY_MS),  # Mar 31 -> Apr 30
        (-1, "MONTH", NOW_MS - 31 * DAY_MS),  # Mar 31 -> Feb 28
        (1, "YEAR", NOW_MS + 365 * DAY_MS),  # no Feb 29 before 2027-03-31
        (-1, "YEAR", NOW_MS - 365 * DAY_MS),  # no Feb 29 after 2025-03-31
    ],
)
def test_timestamp_shift(offset: int, unit: str, expected: int) -> None:
    assert r(f"${{timestamp({offset}, {unit})}}") == str(expected)


def test_timestamp_shift_literal_values() -> None:
    assert r("${timestamp(-1, DAY)}") == "1774879509123"
    assert r("${timestamp(-1, MONTH)}") == "1772287509123"
    assert r("${timestamp(1, YEAR)}") == "1806501909123"


def test_timestamp_before_the_epoch_is_negative() -> None:
    now = datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert r("${timestamp(-1, DAY)}", now=now) == str(1000 - DAY_MS)


# -- timestamp(dateformat(...)): the formatted time read back -----------------------------------


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        ("yyyyMMdd", MIDNIGHT_MS),  # today at 00:00
        ("yyyyMMddHH", MIDNIGHT_MS + 14 * HOUR_MS),  # this hour, 1774965600000
        ("yyyy-MM-dd", MIDNIGHT_MS),
        ("yyyy-MM-dd'T'HH", MIDNIGHT_MS + 14 * HOUR_MS),
        ("yyyyMMddHHmm", MIDNIGHT_MS + 14 * HOUR_MS + 5 * MINUTE_MS),
        ("yyyy-MM-dd HH:mm:ss", NOW_MS - 123),
        ("yyyy-MM-dd HH:mm:ss.SSS", NOW_MS),
        ("yyyyMM", MIDNIGHT_MS - 30 * DAY_MS),  # 2026-03-01, 1772323200000
        ("yyyy", 1767225600000),  # 2026-01-01: 20454 days
        ("yyMMdd", MIDNIGHT_MS),
        ("HH:mm", 14 * HOUR_MS + 5 * MINUTE_MS),  # missing date fields start at 1970-01-01
        ("yyyyMMdd, -1, DAY", MIDNIGHT_MS - DAY_MS),  # yesterday at 00:00
        ("yyyyMMdd, 1, DAY", MIDNIGHT_MS + DAY_MS),
        ("yyyyMMddHH, -3, HOUR", MIDNIGHT_MS + 11 * HOUR_MS),
        ("yyyyMMdd, -1, MONTH", MIDNIGHT_MS - 31 * DAY_MS),  # 2026-02-28 00:00
        ("yyyyMMdd, -1, YEAR", MIDNIGHT_MS - 365 * DAY_MS),  # 2025-03-31 00:00
    ],
)
def test_timestamp_of_dateformat(inner: str, expected: int) -> None:
    assert r(f"${{timestamp(dateformat({inner}))}}") == str(expected)


def test_timestamp_of_dateformat_literal_values() -> None:
    assert r("${timestamp(dateformat(yyyyMMdd))}") == "1774915200000"
    assert r("${timestamp(dateformat(yyyyMMddHH))}") == "1774965600000"


def test_timestamp_of_dateformat_in_a_leap_year() -> None:
    now = datetime(2024, 2, 29, 23, 30, tzinfo=UTC)
    # 1970..2024: 54 * 365 + 13 leap days = 19723 days; + 31 + 28 = 19782 days to Feb 29.
    assert r("${timestamp(dateformat(yyyyMMdd))}", now=now) == str(19782 * DAY_MS)


def test_timestamp_of_dateformat_with_two_digit_year_keeps_the_century() -> None:
    # 30 years back is 1996-03-31; "96" must read back as 1996 (as Java's SimpleDateFormat does,
    # with its 80-years-back / 20-years-ahead window), not 2096.
    # 1970..1996: 26 * 365 + 6 leap days = 9496 days; + 31 + 29 + 30 = 9586 days.
    assert r("${timestamp(dateformat(yyMMdd, -30, YEAR))}") == str(9586 * DAY_MS)


# -- several placeholders in one string ---------------------------------------------------------


def test_several_placeholders_in_one_string() -> None:
    text = "obs://bkt/${region}/${dateformat(yyyy/MM/dd)}/part-${timestamp()}.csv"
    assert r(text, {"region": "eu"}) == "obs://bkt/eu/2026/03/31/part-1774965909123.csv"


def test_where_clause_with_two_time_bounds() -> None:
    text = (
        "ts >= '${dateformat(yyyy-MM-dd HH:mm:ss, -1, DAY)}' "
        "AND ts < '${dateformat(yyyy-MM-dd HH:mm:ss)}' AND src = '${src}'"
    )
    assert r(text, {"src": "app"}) == (
        "ts >= '2026-03-30 14:05:09' AND ts < '2026-03-31 14:05:09' AND src = 'app'"
    )


def test_mixed_builtins_and_variables_adjacent() -> None:
    text = "${t}${dateformat(yyyyMMdd)}${timestamp(dateformat(yyyyMMdd))}${timestamp(-1, SECOND)}"
    assert r(text, {"t": "T"}) == "T20260331" + "1774915200000" + "1774965908123"


# -- non-UTC now --------------------------------------------------------------------------------


def test_aware_non_utc_now_is_formatted_in_utc() -> None:
    # The same instant as NOW, expressed at +08:00. "Times are UTC".
    now = datetime(2026, 3, 31, 22, 5, 9, 123000, tzinfo=timezone(timedelta(hours=8)))
    assert r("${timestamp()}", now=now) == str(NOW_MS)
    assert r("${dateformat(yyyy-MM-dd HH:mm:ss)}", now=now) == "2026-03-31 14:05:09"
    assert r("${timestamp(dateformat(yyyyMMdd))}", now=now) == str(MIDNIGHT_MS)


# -- bad input ----------------------------------------------------------------------------------


def test_bad_placeholder_is_a_bad_request() -> None:
    assert issubclass(BadPlaceholder, BadRequest)
    assert issubclass(UnresolvedVariable, BadRequest)


@pytest.mark.parametrize(
    "text",
    ["${region", "obs://b/${dateformat(yyyy-MM-dd)", "${a}/${", "ok ${a} then ${b"],
)
def test_unclosed_placeholder(text: str) -> None:
    with pytest.raises(BadPlaceholder, match="unclosed"):
        r(text, {"a": "1", "b": "2"})


@pytest.mark.parametrize(
    "text",
    [
        "${dateformat(yyyy-MM-dd, 1, WEEK)}",
        "${dateformat(yyyy-MM-dd, 1, DAYS)}",
        "${dateformat(yyyy-MM-dd, 1, MILLISECOND)}",
        "${dateformat(yyyy-MM-dd, 1, )}",
        "${timestamp(1, WEEK)}",
        "${timestamp(-1, D)}",
        "${timestamp(dateformat(yyyyMMdd, -1, FORTNIGHT))}",
    ],
)
def test_bad_unit(text: str) -> None:
    with pytest.raises(BadPlaceholder) as info:
        r(text)
    message = str(info.value)
    assert "unit" in message
    for unit in ("SECOND", "MINUTE", "HOUR", "DAY", "MONTH", "YEAR"):
        assert unit in message


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("${dateformat(yyyy, 1.5, DAY)}", "1.5"),
        ("${dateformat(yyyy, one, DAY)}", "one"),
        ("${dateformat(yyyy, 1e3, DAY)}", "1e3"),
        ("${timestamp(x, HOUR)}", "x"),
        ("${timestamp(, DAY)}", ""),
        ("${timestamp(- 1, DAY)}", "- 1"),
        ("${timestamp(dateformat(yyyyMMdd, abc, DAY))}", "abc"),
    ],
)
def test_non_integer_offset(text: str, offset: str) -> None:
    with pytest.raises(BadPlaceholder) as info:
        r(text)
    message = str(info.value)
    assert "offset" in message
    assert repr(offset) in message


@pytest.mark.parametrize("letter", ["E", "z", "Z", "a", "h", "k", "D", "w", "u", "X", "T"])
def test_unsupported_pattern_letter(letter: str) -> None:
    with pytest.raises(BadPlaceholder) as info:
        r(f"${{dateformat(yyyy-MM-dd {letter})}}")
    message = str(info.value)
    assert repr(letter) in message
    assert "not supported" in message


def test_unsupported_letter_inside_nested_timestamp() -> None:
    with pytest.raises(BadPlaceholder, match="'E'"):
        r("${timestamp(dateformat(EEE yyyyMMdd))}")


def test_letters_inside_quotes_are_allowed() -> None:
    assert r("${dateformat('Ez' yyyy)}") == "Ez 2026"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("HH 'o''clock'", "14 o'clock"),  # '' inside quotes is a single quote
        ("yyyy''MM", "2026'03"),  # '' outside quotes too
    ],
)
def test_doubled_single_quote_is_a_literal_quote(pattern: str, expected: str) -> None:
    assert r(f"${{dateformat({pattern})}}") == expected


@pytest.mark.parametrize("pattern", ["yyyy-MM-dd'", "yyyy'-MM", "'yyyy"])
def test_unterminated_quote_in_pattern(pattern: str) -> None:
    # Java's SimpleDateFormat rejects these ("Unterminated quote").
    with pytest.raises(BadPlaceholder):
        r(f"${{dateformat({pattern})}}")


@pytest.mark.parametrize(
    ("text", "function"),
    [
        ("${dateformat()}", "dateformat"),
        ("${dateformat(  )}", "dateformat"),
        ("${dateformat(yyyy, 1)}", "dateformat"),
        ("${dateformat(yyyy, 1, DAY, 2)}", "dateformat"),
        ("${dateformat(, 1, DAY)}", "dateformat"),
        ("${timestamp(1)}", "timestamp"),
        ("${timestamp(DAY)}", "timestamp"),
        ("${timestamp(1, DAY, 2)}", "timestamp"),
        ("${timestamp(timestamp())}", "timestamp"),
        ("${timestamp(dateformat())}", "dateformat"),
        ("${timestamp(dateformat(yyyyMMdd, 1))}", "dateformat"),
    ],
)
def test_wrong_argument_counts(text: str, function: str) -> None:
    with pytest.raises(BadPlaceholder) as info:
        r(text)
    assert f"{function} takes" in str(info.value)


@pytest.mark.parametrize(
    "expr",
    ["a b", "", "   ", "a+b", "1abc", "foo(1)", "date format(yyyy)", "$x", "${x"],
)
def test_malformed_placeholder(expr: str) -> None:
    with pytest.raises(BadPlaceholder) as info:
        r("pre ${" + expr + "} post", {"a": "1", "b": "2", "x": "3"})
    message = str(info.value)
    assert "placeholder" in message
    assert "${" + expr + "}" in message


@pytest.mark.parametrize(
    "text",
    [
        "${timestamp(99999999999999999999, SECOND)}",
        "${timestamp(-99999999999999999999, SECOND)}",
        "${timestamp(99999999999999999999, MINUTE)}",
        "${timestamp(99999999999999999999, HOUR)}",
        "${timestamp(99999999999999999999, DAY)}",
        "${timestamp(999999999, DAY)}",
        "${timestamp(3000000, DAY)}",
        "${timestamp(-740000, DAY)}",
        "${timestamp(99999999999999999999, MONTH)}",
        "${timestamp(-99999999999999999999, MONTH)}",
        "${timestamp(99999999999999999999, YEAR)}",
        "${timestamp(-99999999999999999999, YEAR)}",
        "${dateformat(yyyy, 7974, YEAR)}",  # year 10000
        "${dateformat(yyyy, -2026, YEAR)}",  # year 0
        "${dateformat(yyyy, 95689, MONTH)}",  # 2026-03 + 95689 months = 10000-04
        "${dateformat(yyyy-MM-dd, 99999999999999999999, DAY)}",
        "${timestamp(dateformat(yyyyMMdd, 99999999999999999999, HOUR))}",
    ],
)
def test_huge_offsets_are_bad_placeholders(text: str) -> None:
    with pytest.raises(BadPlaceholder, match="out of range"):
        r(text)


def test_offset_with_thousands_of_digits_is_a_bad_placeholder() -> None:
    with pytest.raises(BadPlaceholder):
        r("${timestamp(" + "9" * 5000 + ", DAY)}")


def test_largest_in_range_year_shifts() -> None:
    assert r("${dateformat(yyyy-MM-dd, 7973, YEAR)}") == "9999-03-31"
    assert r("${dateformat(yyyy-MM-dd, -2025, YEAR)}") == "0001-03-31"


def test_one_bad_placeholder_fails_the_whole_text() -> None:
    with pytest.raises(BadPlaceholder):
        r("${a}-${dateformat(yyyy, 1, WEEK)}", {"a": "1"})


# -- placeholders() -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("no placeholders here", []),
        ("${a}", ["a"]),
        ("${a}${a}", ["a", "a"]),
        (
            "x/${region}/${dateformat(yyyy-MM-dd, -1, DAY)}/${timestamp()}",
            ["region", "dateformat(yyyy-MM-dd, -1, DAY)", "timestamp()"],
        ),
        ("${timestamp(dateformat(yyyyMMdd))}", ["timestamp(dateformat(yyyyMMdd))"]),
        ("${a b}", ["a b"]),
        ("${}", [""]),
        ("${unclosed", []),
        ("${a} and ${b", ["a"]),
        ("$a {b} ${c}", ["c"]),
    ],
)
def test_placeholders(text: str, expected: list[str]) -> None:
    assert placeholders(text) == expected
