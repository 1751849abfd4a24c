"""Shared fixtures: a real S3 server on loopback, age keys, and the rule for missing tools.

Under ``CI=true`` a missing component (the ``age`` CLI, a database server) fails the test that
needs it; elsewhere the test is skipped with a message naming what is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pyrage
import pytest
from moto.server import ThreadedMotoServer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
FAKE_ACCESS_KEY = "AKIAFAKEACCESSKEY0001"
#: A recognisable fake secret: tests assert it never appears in any output.
FAKE_SECRET = "sEcReT-DoNoTlEaK-4f1c9a7e2b"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kind",
        action="store_true",
        help="run the end-to-end tests on a kind cluster (needs Docker and network access)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--kind"):
        return
    skip = pytest.mark.skip(reason="end-to-end on kind: opt in with --kind (needs Docker)")
    for item in items:
        if "kind" in item.keywords:
            item.add_marker(skip)


def missing(what: str) -> None:
    """Fail (CI) or skip (elsewhere) because ``what`` is not available here."""
    if IN_CI:
        pytest.fail(f"required component missing under CI=true: {what}")
    pytest.skip(f"missing: {what}")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"the {name!r} command (apt-get install it; .ci/run does)")
    assert path is not None
    return path


ROOT = Path(__file__).resolve().parent.parent


def run_python(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run this Python on ``args`` from the project's root; output captured, never raising."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server in server mode, over HTTP on 127.0.0.1."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard AWS environment pointed at the loopback server; returns the endpoint."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return s3_endpoint


@pytest.fixture
def s3_client(s3_env: str):  # type: ignore[no-untyped-def]
    """A plain boto3 client on the loopback server, for arranging and inspecting buckets."""
    return boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")


@pytest.fixture
def bucket(s3_client) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty bucket."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


def list_keys(client, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Every key in the bucket (complete objects only)."""
    return [obj["Key"] for obj in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def pending_uploads(client, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Keys of multipart uploads started and neither completed nor aborted."""
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


@dataclass(frozen=True)
class AgeKey:
    identity_file: Path  #: the identity, as age-keygen writes it
    identity: str  #: AGE-SECRET-KEY-1…
    recipient: str  #: age1…


def make_age_key(directory: Path, name: str = "key.txt") -> AgeKey:
    ident = pyrage.x25519.Identity.generate()
    path = directory / name
    recipient = str(ident.to_public())
    path.write_text(f"# public key: {recipient}\n{ident}\n")
    path.chmod(0o600)
    return AgeKey(path, str(ident), recipient)


@pytest.fixture(scope="session")
def age_key(tmp_path_factory: pytest.TempPathFactory) -> AgeKey:
    return make_age_key(tmp_path_factory.mktemp("age"))


@pytest.fixture(scope="session")
def other_age_key(tmp_path_factory: pytest.TempPathFactory) -> AgeKey:
    return make_age_key(tmp_path_factory.mktemp("age-other"))
