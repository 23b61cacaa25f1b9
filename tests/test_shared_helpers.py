"""The helpers in orchestra/lib that the CLI, the pages, the API, flow files
and emails share: one way to read and show labels, log levels, durations and
moments in time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestra.lib import levels
from orchestra.lib.dates import parse_datetime
from orchestra.lib.durations import format_duration
from orchestra.lib.labels import (
    LabelError,
    format_labels,
    label_map,
    parse_label,
    parse_labels,
)


@pytest.mark.parametrize("text", ["team:data", "team=data", " team : data "])
def test_a_label_reads_the_same_in_both_syntaxes(text):
    assert parse_label(text) == ("team", "data")


def test_a_label_is_cut_at_its_first_separator_the_rest_is_the_value():
    assert parse_label("url:http://x/?a=b") == ("url", "http://x/?a=b")
    assert parse_label("expr=a:b") == ("expr", "a:b")
    assert parse_label("empty:") == ("empty", "")


@pytest.mark.parametrize("text", ["nolabel", ":x", "=x", "  "])
def test_a_bad_label_says_the_one_syntax(text):
    with pytest.raises(LabelError, match=r"must be key:value, e\.g\. env:prod"):
        parse_label(text)


def test_labels_split_on_commas_and_lines_unless_asked_not_to():
    assert parse_labels("env:prod, team=data\nowner:ada") == {
        "env": "prod",
        "team": "data",
        "owner": "ada",
    }
    assert parse_labels(["env:prod", "team:data"]) == {"env": "prod", "team": "data"}
    assert parse_labels(["note:a,b"], split=False) == {"note": "a,b"}
    assert parse_labels(None) == {} and parse_labels("") == {}


def test_labels_as_data_accept_mappings_kestra_lists_and_texts():
    assert label_map({"a": 1}) == {"a": "1"}
    assert label_map([{"key": "a", "value": "x"}, "b:y", "c=z"]) == {
        "a": "x",
        "b": "y",
        "c": "z",
    }
    assert label_map(None) == {}
    with pytest.raises(LabelError) as bad:
        label_map([{"key": "a", "value": "x"}, 3])
    assert bad.value.index == 1 and "'key' and 'value'" in str(bad.value)
    with pytest.raises(LabelError, match="labels must be a mapping, got int"):
        label_map(3)


def test_labels_are_shown_as_key_colon_value():
    assert format_labels({"env": "prod", "team": "data"}) == "env:prod, team:data"
    assert format_labels(None) == ""


def test_a_minimum_level_includes_the_warning_spelling():
    assert levels.at_least("warn") == ["WARN", "ERROR", "WARNING"]
    assert levels.at_least("WARNING") == ["WARN", "ERROR", "WARNING"]
    assert levels.at_least("ERROR") == ["ERROR"]
    assert levels.at_least("TRACE")[:5] == list(levels.LEVELS)
    assert levels.normalize("warning") == "WARN"
    assert levels.rank("WARNING") == levels.rank("WARN") == 3
    with pytest.raises(ValueError, match="unknown level LOUD; use one of TRACE"):
        levels.normalize("LOUD")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (0.12, "120ms"),
        (4.2, "4.2s"),
        (timedelta(seconds=4.25), "4.2s"),
        (42.7, "42s"),
        (timedelta(minutes=3, seconds=5), "3m 05s"),
        (timedelta(hours=2, minutes=1), "2h 01m"),
        (timedelta(days=3, hours=4), "3d 04h"),
    ],
)
def test_one_duration_text(value, text):
    assert format_duration(value) == text


def test_moments_read_as_aware_datetimes():
    assert parse_datetime("2026-01-31T09:30:00Z") == datetime(
        2026, 1, 31, 9, 30, tzinfo=UTC
    )
    assert parse_datetime(date(2026, 1, 31)) == datetime(2026, 1, 31, tzinfo=UTC)
    paris = ZoneInfo("Europe/Paris")
    assert parse_datetime("2026-01-31T06:00", naive=paris).tzinfo is paris
    assert parse_datetime(1_700_000_000_000, epoch=True) == datetime.fromtimestamp(
        1_700_000_000, tz=UTC
    )
    with pytest.raises(ValueError, match="'soon' is not an ISO-8601 date"):
        parse_datetime("soon")
    with pytest.raises(ValueError):
        parse_datetime(5)  # numbers only with epoch=True
