"""The part size policy: any stream up to 5 TiB fits 10,000 parts; small streams use small parts."""

from __future__ import annotations

import itertools

import pytest

from streamer.errors import ConfigError
from streamer.storage.s3 import (
    DEFAULT_PART_SIZE,
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    part_size,
)

MiB = 1024 * 1024
FIRST_SIZES = [
    pytest.param(MIN_PART_SIZE, id="minimum-5MiB"),
    pytest.param(DEFAULT_PART_SIZE, id="default-8MiB"),
    pytest.param(16 * MiB, id="16MiB"),
    pytest.param(100 * MiB + 3, id="odd-100MiB"),
    pytest.param(MAX_OBJECT_SIZE // MAX_PARTS + 1, id="no-growth-needed"),
    pytest.param(MAX_PART_SIZE, id="maximum-5GiB"),
]


@pytest.mark.parametrize("first", FIRST_SIZES)
def test_any_stream_up_to_5_tib_fits_10000_parts(first: int) -> None:
    sizes = [part_size(n, first) for n in range(1, MAX_PARTS + 1)]
    assert sum(sizes) >= MAX_OBJECT_SIZE


@pytest.mark.parametrize("first", FIRST_SIZES)
def test_every_part_is_within_s3_limits_and_never_shrinks(first: int) -> None:
    sizes = [part_size(n, first) for n in range(1, MAX_PARTS + 1)]
    assert sizes[0] == first
    assert all(MIN_PART_SIZE <= size <= MAX_PART_SIZE for size in sizes)
    assert all(a <= b for a, b in itertools.pairwise(sizes))


def test_default_parts_stay_small_for_streams_of_several_gigabytes() -> None:
    # memory is part size x parts in flight: a 4 GiB backup must not use bigger parts than
    # a 100 MiB one
    parts_for_8_gib = 8 * 1024 * MiB // DEFAULT_PART_SIZE
    assert {part_size(n) for n in range(1, parts_for_8_gib + 1)} == {DEFAULT_PART_SIZE}


def test_parts_grow_by_doubling() -> None:
    sizes = sorted({part_size(n) for n in range(1, MAX_PARTS + 1)})
    assert sizes[0] == DEFAULT_PART_SIZE
    assert all(b == 2 * a for a, b in itertools.pairwise(sizes))


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(MIN_PART_SIZE - 1, id="below-5MiB"),
        pytest.param(MAX_PART_SIZE + 1, id="above-5GiB"),
        pytest.param(0, id="zero"),
    ],
)
def test_a_first_part_size_outside_s3_limits_is_a_config_error(first: int) -> None:
    with pytest.raises(ConfigError, match="outside S3's limits"):
        part_size(1, first)


@pytest.mark.parametrize("number", [pytest.param(0, id="zero"), pytest.param(10_001, id="10001")])
def test_part_numbers_outside_1_to_10000_are_rejected(number: int) -> None:
    with pytest.raises(ValueError, match="part number"):
        part_size(number)
