"""WebSocket frames built and masked by the exec source, checked against websocket-client's."""

from __future__ import annotations

import os

import pytest
from websocket import ABNF

from streamer.sources.exec.frames import MaskKeys, frame_header, mask_in_place, masked


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 65535, 65536, 256 * 1024 + 1])
def test_mask_matches_websocket_client(size: int) -> None:
    data, key = os.urandom(size), os.urandom(4)
    in_place = bytearray(data)
    mask_in_place(key, in_place)
    assert in_place == ABNF.mask(key, data)
    original = bytearray(data)
    assert bytes(masked(key, memoryview(original))) == ABNF.mask(key, data)
    assert original == data  # a copy: the caller's buffer is left as it was


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(0, id="empty"),
        pytest.param(125, id="largest-7-bit-length"),
        pytest.param(126, id="smallest-16-bit-length"),
        pytest.param(65535, id="largest-16-bit-length"),
        pytest.param(65536, id="smallest-64-bit-length"),
    ],
)
def test_frame_header_matches_websocket_client(size: int) -> None:
    data, key = os.urandom(size), os.urandom(4)
    frame = ABNF(fin=1, opcode=ABNF.OPCODE_BINARY, data=data)
    frame.get_mask_key = lambda length: key
    assert frame_header(size, key) + bytes(masked(key, data)) == frame.format()


def test_mask_keys_are_fresh_across_pools() -> None:
    keys = MaskKeys()
    drawn = [keys.next() for _ in range(3000)]  # three pools
    assert all(len(key) == 4 for key in drawn)
    assert len(set(drawn)) > 2990  # 32-bit random keys: a handful of repeats at most
