"""SIGTERM and SIGINT sent to the real ``streamer`` process, as Argo sends them.

The streamer runs as a subprocess against the loopback S3 server, behind the fault proxy: a
slow link keeps a backup uploading long enough to be stopped mid-way, and the proxy tells the
test when the first part is on the wire, or signals the streamer right after the upload was
completed. The checks go to the bucket directly: no object, and no multipart upload left open.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import FAKE_SECRET, list_keys, pending_uploads
from tests.faultproxy import FaultProxy

#: The link's speed: a 5 MiB part takes over a second, so a stop always finds parts in flight.
LINK = 4_000_000
#: More than the link moves during the test: the command is still writing when stopped.
ENDLESS = ["head", "-c", str(200 << 20), "/dev/zero"]
#: The gap between the first and the second SIGTERM (Argo's, seen in the field).
SECOND_SIGNAL_AFTER = 0.3
TERM = int(signal.SIGTERM)


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(s3_endpoint) as running:
        yield running


@pytest.fixture
def start() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Starts ``python -m streamer ARGS…``; a process a failed test left running is killed."""
    started: list[subprocess.Popen[str]] = []

    def run(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamer", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the streamer did not stop:\n{err}")
    assert "Traceback" not in err, err
    assert FAKE_SECRET not in out + err
    return proc.returncode, out, err


def slow_backup(start, proxy: FaultProxy, bucket: str) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    proxy.limit(LINK)
    proc = start(
        "backup", f"s3://{bucket}/db.sql", "--endpoint-url", proxy.url, "--compression", "none",
        "--part-size", "5", "--parts-in-flight", "1", "--", *ENDLESS,
    )  # fmt: skip
    proxy.wait_for(r"[?&]partNumber=1\b")
    return proc


def twice(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=SECOND_SIGNAL_AFTER)  # the scenario's own gap; it is still aborting
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)


def many(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    for n in range(600):
        try:
            proc.wait(timeout=0.05)  # a signal every 50 ms until it has exited
            return
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT if n % 2 else signal.SIGTERM)


@pytest.mark.parametrize(
    "signals", [pytest.param(twice, id="twice"), pytest.param(many, id="many")]
)
def test_signals_while_uploading_leave_no_upload_open(
    start, proxy: FaultProxy, bucket: str, s3_client, signals
) -> None:
    proc = slow_backup(start, proxy, bucket)
    signals(proc)
    code, _, err = finish(proc)
    assert pending_uploads(s3_client, bucket) == [], err
    assert list_keys(s3_client, bucket) == []
    assert code == 128 + TERM, err
    assert "stopped by SIGTERM before the backup was complete" in err
    assert "nothing was stored" in err
    assert err.count("received again: already stopping") == 1, err


def test_a_signal_after_the_upload_was_completed_reports_the_stored_backup(
    start, proxy: FaultProxy, bucket: str, s3_client, tmp_path: Path
) -> None:
    data = os.urandom(3 << 20)
    dump = tmp_path / "dump"
    dump.write_bytes(data)
    pid: list[int] = []
    signalled = threading.Event()

    def signal_the_streamer(line: str) -> None:
        os.kill(pid[0], signal.SIGTERM)
        signalled.set()

    # S3 has completed the upload (the object is stored); the streamer awaits the answer.
    proxy.on_response(r"^POST .*\?uploadId=", signal_the_streamer)
    url = f"s3://{bucket}/db.sql"
    proc = start(
        "backup", url, "--endpoint-url", proxy.url, "--compression", "none", "--json",
        "--", "cat", str(dump),
    )  # fmt: skip
    pid.append(proc.pid)
    code, out, err = finish(proc)
    assert signalled.is_set()
    assert code == 0, err
    assert "SIGTERM received: stopping" in err
    assert f"streamer: SIGTERM arrived after {url} was stored: the backup is complete" in err
    assert "nothing was stored" not in err
    assert json.loads(out)["url"] == url
    assert s3_client.get_object(Bucket=bucket, Key="db.sql")["Body"].read() == data
    assert pending_uploads(s3_client, bucket) == []


def test_a_signal_after_the_output_was_read_still_stores_nothing(
    start, bucket: str, s3_client, tmp_path: Path
) -> None:
    # The command writes everything, asks the streamer to stop, and waits to be killed.
    dump = tmp_path / "dump"
    dump.write_bytes(os.urandom(1 << 20))
    proc = start(
        "backup", f"s3://{bucket}/db.sql", "--",
        "sh", "-c", f"cat {dump}; kill -TERM $PPID; sleep 60",
    )  # fmt: skip
    code, _, err = finish(proc)
    assert code == 128 + TERM, err
    assert "the backup command was killed: nothing was stored" in err
    assert list_keys(s3_client, bucket) == []
    assert pending_uploads(s3_client, bucket) == []


def test_a_signal_during_a_restore_kills_its_command(start, bucket: str, s3_client) -> None:
    s3_client.put_object(Bucket=bucket, Key="db.sql", Body=os.urandom(4 << 20))
    # The restore command reads nothing: it ends only when the streamer kills it.
    proc = start("restore", f"s3://{bucket}/db.sql", "--", "sh", "-c", "kill -TERM $PPID; sleep 60")
    code, _, err = finish(proc)
    assert code == 128 + TERM, err
    assert "the restore command was killed: the restore is incomplete" in err
    assert "nothing was stored" not in err
