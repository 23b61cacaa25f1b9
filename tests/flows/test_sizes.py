"""Data sizes as flow authors write them (ForEachItem ``batch.bytes``)."""

from __future__ import annotations

import pytest

from orchestra.lib.sizes import parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (100, 100),
        ("100", 100),
        ("100B", 100),
        ("512 kb", 512 * 1024),
        ("10MB", 10 * 1024 * 1024),
        ("1.5KB", 1536),
        ("2GB", 2 * 1024**3),
    ],
)
def test_it_reads_sizes_in_bytes_and_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["10XB", "ten", "", "MB", "-1", "1 0MB", True, None])
def test_it_rejects_what_is_not_a_size_with_the_accepted_forms(text):
    with pytest.raises(ValueError, match="not a size|expected a size"):
        parse_size(text)


@pytest.mark.parametrize("text", [0, "0KB"])
def test_it_rejects_an_empty_size(text):
    with pytest.raises(ValueError, match="at least 1 byte"):
        parse_size(text)
