"""The embedded default, end to end: ``make demo`` (``python -m streamer.demo``).

Starts a real S3 server (moto, over HTTP on 127.0.0.1), makes an age key, then runs the real
``streamer`` command three times: a backup of a generated SQL dump (``python -m streamer.sample``
plays ``mysqldump``) through gzip and age, a ``verify`` of the stored object against the
reported SHA-256, and a restore whose output is compared byte for byte with the dump. No
cluster and no cloud are needed, and nothing outside the installed package (with its ``demo``
extra, for moto's server): it runs from any directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

SAMPLE = os.environ.get("DEMO_SIZE", "64M")
BUCKET = "demo-backups"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _streamer(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    argv = [sys.executable, "-m", "streamer", *args]
    print("$ streamer " + shlex.join(args), flush=True)
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, check=False)
    if done.returncode != 0:
        raise SystemExit(f"demo failed: streamer {args[0]} exited {done.returncode}")
    return json.loads(done.stdout) if done.stdout.strip() else {}


def _start_s3(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    try:
        import moto.server  # noqa: F401  (only to fail early with a clear message)
    except ImportError:
        raise SystemExit(
            "the demo needs moto's S3 server: pip install 'backup-operator[demo]'"
        ) from None
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the S3 server did not start within 30s")


def main() -> None:
    import boto3
    import pyrage

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
    }
    _step(f"S3 server (moto) on {endpoint}, bucket {BUCKET}")
    server = _start_s3(port, env)
    try:
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="demo",
            aws_secret_access_key="demo-secret",  # noqa: S106 (the demo's own local server)
        ).create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory(prefix="streamer-demo-") as tmp:
            _run(Path(tmp), env, pyrage)
    finally:
        server.terminate()
        server.wait()


def _run(tmp: Path, env: dict[str, str], pyrage: Any) -> None:
    identity = pyrage.x25519.Identity.generate()
    key_file = tmp / "age-key.txt"
    key_file.write_text(f"{identity}\n")
    recipient = str(identity.to_public())
    dump = [sys.executable, "-m", "streamer.sample", SAMPLE]

    _step(f"backup: a {SAMPLE} SQL dump through gzip + age into S3")
    backup = _streamer(
        [
            "backup",
            f"s3://{BUCKET}/",
            "--path-template",
            'sample-{{ now | date "2006.01.02-15:04:05" }}.sql',
            "-r",
            recipient,
            "--json",
            "--",
            *dump,
        ],
        env,
    )

    _step("verify: download, decrypt, decompress, check the SHA-256")
    _streamer(
        ["verify", backup["url"], "-i", str(key_file), "--sha256", backup["sha256"], "--json"], env
    )

    _step("restore: into a file, compared with the original dump")
    restored = tmp / "restored.sql"
    into_file = ["sh", "-c", f"cat > {shlex.quote(str(restored))}"]
    _streamer(["restore", backup["url"], "-i", str(key_file), "--", *into_file], env)
    original = hashlib.sha256()
    with subprocess.Popen(dump, stdout=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
            original.update(chunk)
    restored_sha = hashlib.sha256()
    with restored.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            restored_sha.update(chunk)
    identical = original.digest() == restored_sha.digest()

    plain, stored = backup["plaintextBytes"], backup["storedBytes"]
    _step("summary")
    print(f"object key        {backup['path']}")
    print(f"dump size         {plain:,} bytes")
    print(f"stored size       {stored:,} bytes (gzip + age)")
    print(f"ratio             {plain / max(stored, 1):.2f}x")
    seconds = backup["durationSeconds"]
    print(f"backup throughput {plain / 1e6 / seconds:.0f} MB/s ({seconds:.1f}s, dump included)")
    print(f"stored SHA-256    {backup['sha256']}")
    print(f"restored == dump  {'yes' if identical else 'NO'} (sha256 {restored_sha.hexdigest()})")
    if not identical:
        raise SystemExit("demo failed: the restored data differs from the original dump")


if __name__ == "__main__":
    main()
