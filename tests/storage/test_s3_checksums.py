"""Every uploaded part carries its CRC32, so S3 refuses a part damaged on the way.

What goes on the wire is read off the real client's requests to the loopback server
(botocore's ``before-send`` event): the header of each part is the CRC32 of exactly the bytes
sent, the upload was created for CRC32, and Complete lists each part's checksum. The switch
the AWS SDKs share, ``AWS_REQUEST_CHECKSUM_CALCULATION=when_required``, sends none of it.
A part S3 says arrived damaged (``BadDigest``) is sent again; one damaged every time fails
the upload, which is aborted.
"""

from __future__ import annotations

import base64
import re
import threading
import zlib
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from streamer.cli import main
from streamer.errors import StorageError
from streamer.storage.s3 import S3Storage
from tests.conftest import pending_uploads
from tests.faultproxy import FOREVER, FaultProxy
from tests.storage.conftest import ATTEMPTS, PART, payload, settings, write_in_chunks


@dataclass(frozen=True)
class _Sent:
    method: str
    url: str
    headers: dict[str, Any]
    body: bytes


class Wire:
    """The S3 requests a client sends, recorded as they leave it."""

    def __init__(self, client: Any) -> None:
        self.requests: list[_Sent] = []
        self._lock = threading.Lock()
        client.meta.events.register("before-send.s3", self._record)

    def _record(self, request: Any, **_: Any) -> None:
        # The body as sent: a part's buffer is pooled, and refilled once its upload is done.
        with self._lock:
            self.requests.append(_Sent(request.method, request.url, dict(request.headers),
                                       _body(request)))  # fmt: skip

    def of(self, method: str, query: str) -> list[Any]:
        """The matching requests; parts (uploaded in parallel) in part-number order."""
        found = [r for r in self.requests if r.method == method and query in r.url]
        return sorted(found, key=lambda r: int(re.search(r"partNumber=(\d+)", r.url)[1])
                      if "partNumber=" in r.url else 0)  # fmt: skip


def _header(request: Any, name: str) -> str | None:
    value = request.headers.get(name)
    return value.decode() if isinstance(value, bytes) else value


def _body(request: Any) -> bytes:
    body = request.body
    return body.encode() if isinstance(body, str) else bytes(body or b"")


def _crc32(body: bytes) -> str:
    return base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()


def _store(storage: S3Storage, key: str, data: bytes) -> Wire:
    wire = Wire(storage.client)
    with storage.open_writer(key) as writer:
        write_in_chunks(writer, data)
        writer.commit()
    return wire


def test_each_part_carries_the_crc32_of_its_bytes(s3_env: str, bucket: str, s3_client: Any) -> None:
    data = payload(2 * PART + 12345)
    wire = _store(S3Storage(bucket, settings()), "crc.bin", data)

    (create,) = wire.of("POST", "?uploads")
    assert _header(create, "x-amz-checksum-algorithm") == "CRC32"
    parts = wire.of("PUT", "partNumber=")
    assert len(parts) == 3
    for part in parts:
        assert _header(part, "x-amz-checksum-crc32") == _crc32(_body(part))
    assert b"".join(_body(p) for p in parts) == data
    (complete,) = wire.of("POST", "uploadId=")
    for part in parts:
        crc = _header(part, "x-amz-checksum-crc32")
        assert f"<ChecksumCRC32>{crc}</ChecksumCRC32>".encode() in _body(complete)
    stored = s3_client.get_object(Bucket=bucket, Key="crc.bin")["Body"].read()
    assert stored == data


def test_a_retried_part_is_sent_with_the_same_checksum(
    s3_env: str, bucket: str, proxy: FaultProxy, s3_client: Any
) -> None:
    proxy.reset(times=1, after_bytes=65536, match="partNumber=2")
    data = payload(2 * PART + 1)
    wire = _store(S3Storage(bucket, settings(endpoint_url=proxy.url)), "retried.bin", data)

    second = wire.of("PUT", "partNumber=2")
    assert len(second) == 2, "the reset attempt and its retry"
    assert {_header(r, "x-amz-checksum-crc32") for r in second} == {_crc32(data[PART : 2 * PART])}
    assert s3_client.get_object(Bucket=bucket, Key="retried.bin")["Body"].read() == data


def test_when_required_sends_no_checksum(s3_env: str, bucket: str, s3_client: Any) -> None:
    data = payload(PART + 7)
    wire = _store(S3Storage(bucket, settings(part_checksums=False)), "plain.bin", data)

    assert len(wire.of("PUT", "partNumber=")) == 2
    for request in wire.requests:
        assert not [h for h in request.headers if h.lower().startswith("x-amz-checksum")]
    (complete,) = wire.of("POST", "uploadId=")
    assert b"Checksum" not in _body(complete)
    assert s3_client.get_object(Bucket=bucket, Key="plain.bin")["Body"].read() == data


@pytest.mark.parametrize(
    ("value", "expected"),
    [("when_supported", True), ("WHEN_REQUIRED", False), (" when_required ", False)],
)
def test_the_cli_follows_the_sdks_switch(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    from streamer.cli import options

    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", value)
    assert options._part_checksums() is expected


def test_an_unknown_value_of_the_switch_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "always")
    result = CliRunner().invoke(
        main, ["backup", "s3://bucket/key", "--compression", "none", "--", "true"]
    )
    assert result.exit_code == 2
    assert "AWS_REQUEST_CHECKSUM_CALCULATION" in result.output
    assert "'always'" in result.output
    assert "when_required" in result.output


@pytest.mark.parametrize("code", ["BadDigest", "XAmzContentSHA256Mismatch"])
def test_a_part_s3_received_damaged_is_sent_again(
    s3_env: str, bucket: str, proxy: FaultProxy, s3_client: Any, code: str
) -> None:
    proxy.fail(1, status=400, code=code, match=r"^PUT .*partNumber=2")
    data = payload(2 * PART + 3)
    _store(S3Storage(bucket, settings(endpoint_url=proxy.url)), "damaged.bin", data)

    assert len(proxy.requests(r"^PUT .*partNumber=2")) == 2
    assert proxy.injected == 1
    assert s3_client.get_object(Bucket=bucket, Key="damaged.bin")["Body"].read() == data


def test_a_part_damaged_every_time_fails_and_stores_nothing(
    s3_env: str, bucket: str, proxy: FaultProxy, s3_client: Any
) -> None:
    proxy.fail(FOREVER, status=400, code="BadDigest", match=r"^PUT .*partNumber=1")
    storage = S3Storage(bucket, settings(endpoint_url=proxy.url))
    with pytest.raises(StorageError, match=f"after {ATTEMPTS} attempts: BadDigest"):
        _store(storage, "never.bin", payload(PART + 1))

    assert len(proxy.requests(r"^PUT .*partNumber=1")) == ATTEMPTS
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket)
    assert pending_uploads(s3_client, bucket) == []


def test_a_server_refusing_checksums_is_told_how_to_turn_them_off(
    s3_env: str, bucket: str, proxy: FaultProxy
) -> None:
    message = "The x-amz-checksum-algorithm header is not supported"
    proxy.fail(FOREVER, status=400, code="InvalidArgument", message=message, match=r"\?uploads")
    with pytest.raises(StorageError) as caught:
        S3Storage(bucket, settings(endpoint_url=proxy.url)).open_writer("k")

    text = str(caught.value)
    assert "InvalidArgument (HTTP 400): The x-amz-checksum-algorithm header" in text
    assert "AWS_REQUEST_CHECKSUM_CALCULATION=when_required" in text
    assert "partChecksums: 'false'" in text
