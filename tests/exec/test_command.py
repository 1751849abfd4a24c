"""The exec stream against the loopback API server: backup, restore, flow control, kill, and
how the connection's end is judged.

Everything goes through the real ``kubernetes`` client path (kubeconfig, bearer token, TLS,
``create_websocket()``); only the far end is ours.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import websocket
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from websocket import WebSocketException

from streamer.errors import SourceError, StdinClosed, StreamerError
from streamer.sources.base import Command, ExitStatus, Mode
from streamer.sources.exec import ExecRunner
from streamer.sources.exec.command import MAX_STDERR_LINE
from tests.exec.apiserver import V4, V5, ApiServer
from tests.exec.conftest import EXEC_TOKEN, NAMESPACE, POD

pytestmark = pytest.mark.timeout(60)


def read_all(command: Command, size: int = 256 * 1024) -> bytes:
    out = bytearray()
    buffer = memoryview(bytearray(size))
    while n := command.readinto(buffer):
        out += buffer[:n]
    return bytes(out)


def write_forever(command: Command, chunk: bytes) -> None:
    """Write until the command refuses (bounded, so a bug fails instead of hanging)."""
    for _ in range(4096):
        command.write(chunk)
    pytest.fail("the command kept accepting input")


def stderr_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "streamer.command"]


# -- backup ------------------------------------------------------------------------------------
# -- backup ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "protocols",
    [pytest.param((V5, V4), id="v5"), pytest.param((V4,), id="v4-only")],
)
def test_backup_reads_stdout_and_forwards_stderr(
    runner: ExecRunner,
    apiserver: ApiServer,
    caplog: pytest.LogCaptureFixture,
    protocols: tuple[str, ...],
) -> None:
    apiserver.behaviour.protocols = protocols
    caplog.set_level(logging.INFO, logger="streamer.command")
    script = "echo first >&2; printf 'out-%s\\n' 1 2 3; printf 'no newline' >&2"
    with runner.start(["sh", "-c", script], Mode.BACKUP) as command:
        assert read_all(command, size=5) == b"out-1\nout-2\nout-3\n"
        assert command.wait() == ExitStatus(0, "exit code 0")
    assert stderr_lines(caplog) == ["first", "no newline"]
    [record] = apiserver.execs
    assert (record.namespace, record.pod, record.container) == (NAMESPACE, POD, "main")
    assert record.argv == ["sh", "-c", script]
    assert record.protocol == protocols[0]
    assert (record.stdin, record.stdout) == (False, True)


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(0, id="empty"),
        pytest.param(1, id="one-byte"),
        pytest.param(64 * 1024, id="one-frame"),
        pytest.param(64 * 1024 + 1, id="frame-plus-one"),
        pytest.param(48 * 1024 * 1024 + 7, id="48MiB"),
    ],
)
def test_backup_is_byte_identical(runner: ExecRunner, tmp_path: Path, size: int) -> None:
    sent = tmp_path / "sent"
    script = f"head -c {size} /dev/urandom | tee {sent}"
    with runner.start(["sh", "-c", script], Mode.BACKUP) as command:
        data = read_all(command)
        assert command.wait().ok
    assert len(data) == size
    assert data == sent.read_bytes()


def test_backup_argv_with_shell_metacharacters_arrives_intact(
    runner: ExecRunner, apiserver: ApiServer
) -> None:
    argv = ["printf", "%s|", "a b", "c&d=e", "ü/?#", "--", "-n"]
    with runner.start(argv, Mode.BACKUP) as command:
        assert read_all(command) == "a b|c&d=e|ü/?#|--|-n|".encode()
        assert command.wait().ok
    assert apiserver.execs[0].argv == argv


@pytest.mark.parametrize("code", [1, 3, 255])
def test_non_zero_exit_code_comes_from_the_status(runner: ExecRunner, code: int) -> None:
    with runner.start(["sh", "-c", f"echo partial; exit {code}"], Mode.BACKUP) as command:
        assert read_all(command) == b"partial\n"
        assert command.wait() == ExitStatus(code, f"exit code {code}")


def test_killed_by_signal_is_128_plus_n(runner: ExecRunner) -> None:
    with runner.start(["sh", "-c", "kill -TERM $$"], Mode.BACKUP) as command:
        assert read_all(command) == b""
        assert command.wait().code == 128 + 15


def test_a_command_that_cannot_start_fails_with_the_servers_message(runner: ExecRunner) -> None:
    with runner.start(["/no/such/dump-tool"], Mode.BACKUP) as command:
        assert read_all(command) == b""
        with pytest.raises(SourceError, match=r"failed: exec: \"/no/such/dump-tool\""):
            command.wait()


def test_missing_status_is_a_failure_not_a_short_backup(
    runner: ExecRunner, apiserver: ApiServer
) -> None:
    apiserver.behaviour.omit_status = True
    with runner.start(["sh", "-c", "head -c 100000 /dev/zero"], Mode.BACKUP) as command:
        buffer = memoryview(bytearray(1 << 20))
        received = 0
        while received < 100000:
            received += command.readinto(buffer)
        assert received == 100000
        with pytest.raises(SourceError, match="ended without the command's exit status") as info:
            command.readinto(buffer)
        assert "after 100000 bytes" in str(info.value)
        with pytest.raises(SourceError, match="exit status"):
            command.wait()


def test_dropped_connection_is_a_failure(runner: ExecRunner, apiserver: ApiServer) -> None:
    apiserver.behaviour.drop_after = 1 << 20
    with runner.start(["sh", "-c", "head -c 20000000 /dev/zero"], Mode.BACKUP) as command:
        with pytest.raises(SourceError, match=f"pod {NAMESPACE}/{POD} container main ended"):
            read_all(command)
        with pytest.raises(SourceError, match="connection was lost"):
            command.wait()


def test_status_arrives_even_when_nobody_reads_stdout(runner: ExecRunner) -> None:
    """wait() without reading discards stdout, so a failed pipeline can still learn the status."""
    with runner.start(["sh", "-c", "head -c 5000000 /dev/zero; exit 4"], Mode.BACKUP) as command:
        assert command.wait().code == 4
        assert command.readinto(memoryview(bytearray(10))) == 0


def test_stderr_lines_are_bounded(runner: ExecRunner, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streamer.command")
    size = 3 * MAX_STDERR_LINE + 10
    with runner.start(["sh", "-c", f"head -c {size} /dev/zero | tr '\\0' x >&2"], Mode.BACKUP) as c:
        assert read_all(c) == b""
        assert c.wait().ok
    lines = stderr_lines(caplog)
    assert [len(line) for line in lines] == [MAX_STDERR_LINE] * 3 + [10]


def test_keep_alive_pings_while_the_command_is_silent(
    kubeconfig: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="websockets.server")
    runner = ExecRunner.from_environment(POD, "main", NAMESPACE)
    runner.ping_interval = 0.25
    with runner.start(["sh", "-c", "sleep 1.5; echo done"], Mode.BACKUP) as command:
        assert read_all(command) == b"done\n"
        assert command.wait().ok
    pings = [r for r in caplog.records if r.getMessage().startswith("< PING")]
    assert len(pings) >= 4


def test_a_vanished_api_server_is_detected_by_unanswered_pings(tmp_path: Path) -> None:
    """No FIN, no RST, no pong: the peer froze (SIGSTOP; its kernel still ACKs)."""
    kubeconfig = tmp_path / "kubeconfig"
    endpoint = subprocess.Popen(
        [sys.executable, "-m", "tests.exec.apiserver", "--token", EXEC_TOKEN,
         "--pod", f"{NAMESPACE}/{POD}", "--kubeconfig", str(kubeconfig)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            if kubeconfig.exists():
                break
            time.sleep(0.05)
        configuration = k8s_client.Configuration()
        k8s_config.load_kube_config(str(kubeconfig), client_configuration=configuration)
        runner = ExecRunner(
            k8s_client.ApiClient(configuration), NAMESPACE, POD, "main", ping_interval=0.2
        )
        with runner.start(["sleep", "30"], Mode.BACKUP) as command:
            time.sleep(0.5)  # pings answered: the stream is alive
            endpoint.send_signal(signal.SIGSTOP)
            started = time.monotonic()
            with pytest.raises(SourceError, match=r"no reply to keep-alive pings for 0\.6s"):
                command.readinto(memoryview(bytearray(10)))
            assert time.monotonic() - started < 5
    finally:
        endpoint.send_signal(signal.SIGCONT)
        endpoint.terminate()
        endpoint.wait(timeout=10)


# -- restore -----------------------------------------------------------------------------------


def test_restore_writes_stdin_and_closes_it(
    runner: ExecRunner, apiserver: ApiServer, tmp_path: Path
) -> None:
    out = tmp_path / "restored"
    data = bytes(range(256)) * 4099 * 7  # several frames, not a multiple of the frame size
    with runner.start(["sh", "-c", f"cat > {out}; echo read >&2"], Mode.RESTORE) as command:
        command.write(data[:1000])
        command.write(memoryview(data)[1000:])
        command.close_stdin()
        command.close_stdin()  # idempotent
        assert command.wait() == ExitStatus(0, "exit code 0")
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    [record] = apiserver.execs
    assert (record.stdin, record.stdout, record.protocol) == (True, False, V5)
    assert record.stdin_closed_by_signal


def test_restore_exit_code_is_the_commands(runner: ExecRunner) -> None:
    with runner.start(["sh", "-c", "cat >/dev/null; exit 5"], Mode.RESTORE) as command:
        command.write(b"x" * 1000)
        command.close_stdin()
        assert command.wait().code == 5


def test_restore_command_exiting_early_stops_the_writer(runner: ExecRunner) -> None:
    script = "head -c 1000000 >/dev/null; echo 'bad input' >&2; exit 7"
    chunk = bytes(1 << 20)
    with runner.start(["sh", "-c", script], Mode.RESTORE) as command:
        with pytest.raises(StdinClosed, match="stopped reading its input"):
            write_forever(command, chunk)
        assert command.wait() == ExitStatus(7, "exit code 7")


def test_restore_missing_status_is_a_failure(runner: ExecRunner, apiserver: ApiServer) -> None:
    apiserver.behaviour.omit_status = True
    with runner.start(["sh", "-c", "cat >/dev/null"], Mode.RESTORE) as command:
        command.write(b"data")
        command.close_stdin()
        with pytest.raises(SourceError, match="ended without the command's exit status"):
            command.wait()


def test_restore_dropped_connection_is_a_failure(runner: ExecRunner, apiserver: ApiServer) -> None:
    apiserver.behaviour.drop_after = 1 << 20
    chunk = bytes(256 * 1024)
    with runner.start(["sh", "-c", "cat >/dev/null"], Mode.RESTORE) as command:
        with pytest.raises(StdinClosed):
            write_forever(command, chunk)
        with pytest.raises(SourceError, match="connection was lost"):
            command.wait()


# -- flow control --------------------------------------------------------------------------------


def test_a_slow_reader_pushes_back_on_the_command(runner: ExecRunner, apiserver: ApiServer) -> None:
    """Backup: while the pipeline does not read (S3 is slow), the command is held back."""
    with runner.start(["sh", "-c", "head -c 1000000000 /dev/zero"], Mode.BACKUP) as command:
        assert command.readinto(memoryview(bytearray(1024))) == 1024
        time.sleep(0.5)
        sent = apiserver.execs[0].counted
        time.sleep(0.5)
        assert apiserver.execs[0].counted == sent  # stalled, not streaming into memory
        assert sent < 32 * 1024 * 1024
        command.kill()


def test_a_slow_command_pushes_back_on_the_writer(runner: ExecRunner, apiserver: ApiServer) -> None:
    """Restore: while the command does not read, write() blocks instead of buffering."""
    with runner.start(["sh", "-c", "sleep 2; cat >/dev/null"], Mode.RESTORE) as command:
        chunk = bytes(1 << 20)
        written = 0
        started = time.monotonic()
        while time.monotonic() - started < 1.5:  # the command reads nothing for 2 s
            command.write(chunk)
            written += len(chunk)
        assert written < 64 * len(chunk)
        command.close_stdin()
        assert command.wait().ok


# -- kill (the deadline watchdog) ----------------------------------------------------------------


def kill_soon(command: Command, after: float = 0.3) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(after), command.kill(), command.kill()))
    thread.start()
    return thread


def test_kill_unblocks_a_silent_backup(runner: ExecRunner) -> None:
    with runner.start(["sleep", "30"], Mode.BACKUP) as command:
        started = time.monotonic()
        killer = kill_soon(command)
        assert command.readinto(memoryview(bytearray(10))) == 0
        assert command.wait() == ExitStatus(
            137, "killed: the exec connection was closed", killed=True
        )
        killer.join()
        assert time.monotonic() - started < 5


def test_kill_unblocks_a_blocked_restore_write(runner: ExecRunner) -> None:
    with runner.start(["sleep", "30"], Mode.RESTORE) as command:
        started = time.monotonic()
        killer = kill_soon(command)
        with pytest.raises(StdinClosed):
            write_forever(command, bytes(1 << 20))  # nobody reads: the socket fills, write blocks
        assert command.wait().code == 137
        killer.join()
        assert time.monotonic() - started < 5


def test_close_stdin_never_blocks(runner: ExecRunner) -> None:
    """A broken restore closes stdin and kills; closing must not wait for a stuck command."""
    with runner.start(["sleep", "30"], Mode.RESTORE) as command:

        def fill() -> None:
            with contextlib.suppress(StdinClosed):
                write_forever(command, bytes(1 << 20))

        writer = threading.Thread(target=fill)
        writer.start()
        time.sleep(0.5)  # the socket and the queue are full; the writer is blocked
        started = time.monotonic()
        command.close_stdin()
        assert time.monotonic() - started < 0.5
        command.kill()
        writer.join(timeout=5)
        assert not writer.is_alive()
        assert command.wait().code == 137


def test_kill_after_the_command_ended_keeps_its_status(runner: ExecRunner) -> None:
    with runner.start(["true"], Mode.BACKUP) as command:
        assert read_all(command) == b""
        command.kill()
        assert command.wait() == ExitStatus(0, "exit code 0")  # not killed=True


def test_no_kubernetes_exception_leaks(runner: ExecRunner, apiserver: ApiServer) -> None:
    """Every fault surfaces as a StreamerError: the CLI never shows a traceback."""
    apiserver.behaviour.drop_after = 10
    for mode in Mode:
        try:
            with runner.start(["sh", "-c", "head -c 100000 /dev/zero"], mode) as command:
                if mode is Mode.BACKUP:
                    read_all(command)
                else:
                    command.write(bytes(100000))
                    command.close_stdin()
                command.wait()
        except StreamerError:
            pass


# -- the connection's state: socket errors are judged by how the stream ended --------------------


def break_frame_reading(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """Frame reading fails with an AttributeError after ``after`` frames, as a bug would.

    The connection stays open: nothing but code on the streamer's side went wrong.
    """
    original = websocket.WebSocket.recv_data_frame
    frames = 0

    def recv_data_frame(self: websocket.WebSocket, control_frame: bool = False) -> Any:
        nonlocal frames
        frames += 1
        if frames > after:
            raise AttributeError("'Frame' object has no attribute 'channel'")
        return original(self, control_frame)

    monkeypatch.setattr(websocket.WebSocket, "recv_data_frame", recv_data_frame)


def test_a_bug_in_the_backup_frame_loop_is_not_a_lost_connection(
    runner: ExecRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_frame_reading(monkeypatch, after=1)
    with runner.start(["sh", "-c", "echo one; sleep 30"], Mode.BACKUP) as command:
        buffer = memoryview(bytearray(100))
        assert command.readinto(buffer) == 4
        with pytest.raises(SourceError, match=r"internal error \(AttributeError: 'Frame'") as info:
            command.readinto(buffer)
        assert "bug in the streamer" in str(info.value)
        assert "connection was lost" not in str(info.value)
        assert isinstance(info.value.__cause__, AttributeError)
        with pytest.raises(SourceError, match=r"internal error \(AttributeError"):
            command.wait()


def test_a_bug_in_the_restore_reader_is_not_a_lost_connection(
    runner: ExecRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_frame_reading(monkeypatch, after=0)
    with runner.start(["sh", "-c", "cat >/dev/null"], Mode.RESTORE) as command:
        with pytest.raises(SourceError, match=r"internal error \(AttributeError: 'Frame'") as info:
            command.wait()
        assert "connection was lost" not in str(info.value)
        assert isinstance(info.value.__cause__, AttributeError)
        with pytest.raises(StdinClosed, match="internal error"):
            command.write(b"data")


@pytest.mark.parametrize("end", ["kill", "close"])
def test_ending_it_ourselves_during_a_blocked_receive_is_a_kill_whatever_the_socket_raises(
    runner: ExecRunner, monkeypatch: pytest.MonkeyPatch, end: str
) -> None:
    """A socket shut down under websocket-client fails in odd ways (AttributeError on its
    ``None`` socket, ValueError from ssl); after our own kill() or close() any of them is the
    expected end, not a lost connection and not a bug."""
    original = websocket.WebSocket.recv_data_frame
    receiving = threading.Event()

    def recv_data_frame(self: websocket.WebSocket, control_frame: bool = False) -> Any:
        receiving.set()
        try:
            return original(self, control_frame)
        except WebSocketException as exc:
            raise AttributeError("'NoneType' object has no attribute 'recv'") from exc

    monkeypatch.setattr(websocket.WebSocket, "recv_data_frame", recv_data_frame)
    with runner.start(["sleep", "30"], Mode.BACKUP) as command:
        ender = threading.Thread(target=lambda: (receiving.wait(10), getattr(command, end)()))
        ender.start()
        assert command.readinto(memoryview(bytearray(10))) == 0
        ender.join()
        assert command.wait() == ExitStatus(
            137, "killed: the exec connection was closed", killed=True
        )
