"""What both benchmarks need: free loopback ports, waiting for a server, an S3 client, and
the same inputs (an age key and the generated corpus)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

__all__ = ["free_port", "s3_client", "wait_for_port", "write_inputs"]


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


def write_inputs(workdir: Path, size: int) -> tuple[Path, str, Path]:
    """An age identity file, its recipient, and a ``size``-byte corpus file in ``workdir``."""
    import pyrage

    from bench.corpus import chunks

    identity = pyrage.x25519.Identity.generate()
    key = workdir / "key.txt"
    key.write_text(f"{identity}\n")
    corpus = workdir / "corpus.sql"
    with corpus.open("wb") as f:
        for chunk in chunks(size):
            f.write(chunk)
    return key, str(identity.to_public()), corpus
