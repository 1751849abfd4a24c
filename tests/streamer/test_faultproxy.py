"""The fault proxy's slow link and events, which the signal tests rely on."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from tests.faultproxy import FaultProxy, Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_throttle_lets_bytes_through_at_its_rate() -> None:
    clock = FakeClock()
    throttle = Throttle(1_000_000, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        throttle.take(500_000)
    # The first piece goes at once; each later one waits for the link to be free again.
    assert clock.slept == [0.5, 0.5, 0.5]
    assert throttle.passed == 2_000_000


def test_the_throttle_is_shared_and_an_idle_link_saves_nothing_up() -> None:
    clock = FakeClock()
    throttle = Throttle(1_000, clock=clock, sleep=clock.sleep)
    throttle.take(1_000)  # busy until t+1
    clock.now += 10  # idle for a while
    throttle.take(1_000)
    throttle.take(1_000)  # no burst credit from the idle time: waits a full second
    assert clock.slept == [1.0]


def test_the_throttle_wants_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="positive"):
        Throttle(0)


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(s3_endpoint) as running:
        yield running


def client(url: str):  # type: ignore[no-untyped-def]
    config = Config(request_checksum_calculation="when_required", retries={"max_attempts": 1})
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", config=config)


def test_a_limited_link_relays_every_byte_through_its_throttles(
    proxy: FaultProxy, bucket: str, s3_client
) -> None:
    throttles = proxy.limit(50_000_000)
    body = bytes(range(256)) * 4096
    via_proxy = client(proxy.url)
    via_proxy.put_object(Bucket=bucket, Key="k", Body=body)
    assert via_proxy.get_object(Bucket=bucket, Key="k")["Body"].read() == body
    assert throttles["request"].passed == len(body)
    assert throttles["response"].passed >= len(body)
    proxy.limit(None)
    via_proxy.head_object(Bucket=bucket, Key="k")
    assert throttles["response"].passed < 2 * len(body)  # lifted: nothing more went through


def test_wait_for_returns_the_request_line_or_times_out(proxy: FaultProxy, bucket: str) -> None:
    client(proxy.url).put_object(Bucket=bucket, Key="seen", Body=b"x")
    assert proxy.wait_for(r"^PUT .*/seen ").startswith("PUT ")
    with pytest.raises(TimeoutError, match="never-sent"):
        proxy.wait_for("never-sent", timeout=0.1)


def test_on_response_runs_once_after_the_request_took_effect_before_the_client_knows(
    proxy: FaultProxy, bucket: str, s3_client
) -> None:
    returned = threading.Event()
    seen: list[tuple[str, bool, bool]] = []

    def hook(line: str) -> None:
        stored = s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 1
        seen.append((line.split(" ")[0], stored, returned.is_set()))

    proxy.on_response(r"^PUT .*/hooked ", hook)
    via_proxy = client(proxy.url)
    via_proxy.put_object(Bucket=bucket, Key="hooked", Body=b"x")
    returned.set()
    via_proxy.put_object(Bucket=bucket, Key="hooked", Body=b"y")
    assert seen == [("PUT", True, False)]
