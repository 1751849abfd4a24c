"""The part size policy: which size each part of a multipart upload of unknown length gets.

A backup's length is unknown until it ends, and S3 allows at most 10,000 parts of 5 MiB to
5 GiB. Fixed parts would force a choice between small memory and large streams; so the parts
keep their first size for as long as possible, then double, so that any stream up to S3's
5 TiB object maximum fits, while small and medium streams (and so memory) keep small parts.
Pure arithmetic, no I/O.
"""

from __future__ import annotations

import functools

from streamer.errors import ConfigError

__all__ = [
    "DEFAULT_PART_SIZE",
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "part_size",
    "validate_first_part_size",
]

MiB = 1024 * 1024
#: S3's limits on multipart uploads (every part but the last is at least MIN_PART_SIZE).
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * 1024 * 1024 * MiB
#: The first part's size unless configured; also the size of the ranges a reader fetches.
DEFAULT_PART_SIZE = 8 * MiB


def validate_first_part_size(first_part_size: int) -> None:
    """Raise ConfigError unless ``first_part_size`` is within S3's part limits."""
    if not MIN_PART_SIZE <= first_part_size <= MAX_PART_SIZE:
        raise ConfigError(
            f"part size {first_part_size} bytes is outside S3's limits: "
            f"use {MIN_PART_SIZE} (5 MiB) to {MAX_PART_SIZE} (5 GiB)"
        )


def _sizes_total(first_part_size: int, period: int) -> int:
    """Bytes that MAX_PARTS parts hold when the size doubles every ``period`` parts."""
    total = 0
    for start in range(0, MAX_PARTS, period):
        count = min(period, MAX_PARTS - start)
        total += count * min(MAX_PART_SIZE, first_part_size << (start // period))
    return total


@functools.lru_cache(maxsize=64)
def _doubling_period(first_part_size: int) -> int:
    """The longest doubling period with which MAX_PARTS parts still hold MAX_OBJECT_SIZE.

    The longest period keeps parts (and so memory) small for as long as possible.
    """
    validate_first_part_size(first_part_size)
    low, high = 1, MAX_PARTS  # _sizes_total(first, 1) is always enough; find the largest period
    while low < high:
        middle = (low + high + 1) // 2
        if _sizes_total(first_part_size, middle) >= MAX_OBJECT_SIZE:
            low = middle
        else:
            high = middle - 1
    return low


def part_size(part_number: int, first_part_size: int = DEFAULT_PART_SIZE) -> int:
    """The size of part ``part_number`` (1-based) of a stream of unknown length.

    Parts keep ``first_part_size`` for the first period, then double every period, where the
    period is the longest one with which 10,000 parts still hold 5 TiB. With the default 8 MiB,
    parts stay 8 MiB for the first ~8.5 GiB of a stream.
    """
    if not 1 <= part_number <= MAX_PARTS:
        raise ValueError(f"part number {part_number} is outside 1..{MAX_PARTS}")
    period = _doubling_period(first_part_size)
    return min(MAX_PART_SIZE, first_part_size << ((part_number - 1) // period))
