"""Data sizes as flow authors write them (``10MB``, ``512 KB``, ``1024``)."""

from __future__ import annotations

import re

# Kestra reads sizes with Micronaut's converter: binary multiples, so 1KB is
# 1024 bytes.
UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?B)?\s*$", re.IGNORECASE)


def parse_size(value: object) -> int:
    """A number of bytes from an int or a text such as ``10MB``; ValueError
    with the accepted forms otherwise. Sizes must be at least one byte."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 512KB or 10MB, got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value)) if isinstance(value, str | float) else None
        if match is None:
            raise ValueError(
                f"{value!r} is not a size; use a number of bytes or a number "
                "with B, KB, MB, GB or TB (1KB = 1024 bytes), e.g. 512KB or 10MB"
            )
        size = int(float(match.group(1)) * UNITS[(match.group(2) or "").upper()])
    if size < 1:
        raise ValueError(f"a size must be at least 1 byte, got {value!r}")
    return size
