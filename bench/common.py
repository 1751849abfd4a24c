"""What the benchmarks share: free loopback ports, waiting for a server, the S3 server (moto)
and a client for it, and the same inputs (an age key and the generated corpus)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = [
    "free_port",
    "s3_client",
    "s3_env",
    "start_moto",
    "wait_for_port",
    "write_inputs",
    "write_key",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, what: str, seconds: float = 30.0) -> None:
    """Return once something listens on 127.0.0.1:``port``; exit if nothing does in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start on 127.0.0.1:{port}")


def s3_client(env: dict[str, str]) -> Any:
    """A boto3 client for the benchmark's S3 server, from the environment it hands the tools."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def write_key(workdir: Path) -> tuple[Path, str]:
    """A fresh age identity file in ``workdir``, and its recipient."""
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    key = workdir / "key.txt"
    key.write_text(f"{identity}\n")
    return key, str(identity.to_public())


def write_inputs(workdir: Path, size: int) -> tuple[Path, str, Path]:
    """An age identity file, its recipient, and a ``size``-byte corpus file in ``workdir``."""
    from streamer.sample import chunks

    key, recipient = write_key(workdir)
    corpus = workdir / "corpus.sql"
    with corpus.open("wb") as f:
        for chunk in chunks(size):
            f.write(chunk)
    return key, recipient, corpus


def s3_env(root: Path) -> dict[str, str]:
    """The environment the tools get: a fresh loopback S3 endpoint, fake credentials, no
    user AWS configuration, and the project on ``PYTHONPATH``."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "PYTHONPATH": str(root),
    }
    env["AWS_ENDPOINT_URL"] = env["AWS_ENDPOINT_URL_S3"]
    return env


def start_moto(env: dict[str, str], bucket: str) -> subprocess.Popen[bytes]:
    """moto's S3 server in its own process on the endpoint of ``env``, with ``bucket``."""
    port = int(env["AWS_ENDPOINT_URL_S3"].rsplit(":", 1)[1])
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, "the S3 server (moto)")
        s3_client(env).create_bucket(Bucket=bucket)
    except BaseException:
        server.terminate()
        server.wait()
        raise
    return server
