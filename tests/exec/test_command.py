"""The exec source alone: ExecRunner/ExecCommand against the loopback API server.

Everything goes through the real ``kubernetes`` client path (kubeconfig, bearer token, TLS,
``create_websocket()``); only the far end is ours.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from streamer.errors import ConfigError, SourceError, StdinClosed, StreamerError
from streamer.sources.base import Command, ExitStatus, Mode
from streamer.sources.exec import MAX_STDERR_LINE, ExecRunner, mask, parse_status
from tests.exec.apiserver import V4, V5, ApiServer, PodSpec, write_kubeconfig
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


def test_restore_refuses_an_old_server_before_running_anything(
    runner: ExecRunner, apiserver: ApiServer
) -> None:
    apiserver.behaviour.protocols = (V4,)
    apiserver.behaviour.version = (1, 29)
    with pytest.raises(SourceError, match=r"v1\.29\.0.*close the command's stdin.*1\.30"):
        runner.start(["sh", "-c", "cat"], Mode.RESTORE)
    assert apiserver.execs == []


def test_restore_refuses_a_v4_handshake(runner: ExecRunner, apiserver: ApiServer) -> None:
    """A new server that still negotiates v4 (the feature gate is off) is refused too."""
    apiserver.behaviour.protocols = (V4,)
    with pytest.raises(SourceError, match=r"only speaks v4\.channel\.k8s\.io.*stdin"):
        runner.start(["sh", "-c", "cat"], Mode.RESTORE)


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
        assert command.wait() == ExitStatus(137, "killed: the exec connection was closed")
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
        assert command.wait().ok


# -- before exec: the Pod, the container, the credentials ----------------------------------------


def test_waits_until_the_container_is_running(kubeconfig: Path, apiserver: ApiServer) -> None:
    apiserver.pods[(NAMESPACE, "slow")] = PodSpec({"app": "running"}, running_after=1.0)
    runner = ExecRunner.from_environment("slow", "app", NAMESPACE, ready_timeout=10)
    started = time.monotonic()
    with runner.start(["echo", "up"], Mode.BACKUP) as command:
        assert read_all(command) == b"up\n"
        assert command.wait().ok
    assert time.monotonic() - started >= 0.9


@pytest.mark.parametrize(
    ("pod", "container", "message"),
    [
        pytest.param("gone", "main", r"pods \"gone\" not found.*--pod", id="missing-pod"),
        pytest.param(
            POD,
            "mysql",
            rf"pod {NAMESPACE}/{POD} has no container 'mysql' \(its containers: main, db,",
            id="missing-container",
        ),
        pytest.param(
            POD, "finished", r"container 'finished' .* has terminated \(Completed", id="terminated"
        ),
        pytest.param(
            POD,
            "starting",
            r"'starting' .* is not running after 0\.5s \(waiting: ContainerCreating\)",
            id="never-running",
        ),
    ],
)
def test_pod_and_container_problems_are_named(
    kubeconfig: Path, apiserver: ApiServer, pod: str, container: str, message: str
) -> None:
    runner = ExecRunner.from_environment(pod, container, NAMESPACE, ready_timeout=0.5)
    with pytest.raises(SourceError, match=message):
        runner.start(["true"], Mode.BACKUP)
    assert apiserver.execs == []


def test_wrong_token_is_refused_without_showing_it(apiserver: ApiServer, tls: tuple) -> None:
    configuration = k8s_client.Configuration()
    configuration.host = apiserver.url
    configuration.ssl_ca_cert = str(tls[1])
    configuration.api_key = {"authorization": "Bearer wrong-TOKEN-value"}
    runner = ExecRunner(k8s_client.ApiClient(configuration), NAMESPACE, POD, "main")
    with pytest.raises(SourceError, match=r"HTTP 401.*'create' on pods/exec") as info:
        runner.start(["true"], Mode.BACKUP)
    assert "wrong-TOKEN-value" not in str(info.value)
    assert EXEC_TOKEN not in str(info.value)


def test_unreachable_api_server(tls: tuple) -> None:
    configuration = k8s_client.Configuration()
    configuration.host = "https://127.0.0.1:9"
    configuration.ssl_ca_cert = str(tls[1])
    configuration.retries = 0
    runner = ExecRunner(k8s_client.ApiClient(configuration), NAMESPACE, POD, "main")
    with pytest.raises(SourceError, match=r"cannot reach the Kubernetes API server at https://"):
        runner.start(["true"], Mode.BACKUP)


def test_untrusted_certificate_is_refused(apiserver: ApiServer) -> None:
    configuration = k8s_client.Configuration()
    configuration.host = apiserver.url
    configuration.api_key = {"authorization": f"Bearer {EXEC_TOKEN}"}
    configuration.retries = 0
    runner = ExecRunner(k8s_client.ApiClient(configuration), NAMESPACE, POD, "main")
    with pytest.raises(SourceError, match="cannot reach") as info:
        runner.start(["true"], Mode.BACKUP)
    assert EXEC_TOKEN not in str(info.value)


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


# -- configuration -------------------------------------------------------------------------------


def test_pod_name_and_namespace_from_the_environment(
    kubeconfig: Path, apiserver: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POD_NAME", POD)
    monkeypatch.setenv("POD_NAMESPACE", NAMESPACE)
    runner = ExecRunner.from_environment(None, "db", None)
    assert runner.describe() == f"pod {NAMESPACE}/{POD} container db"
    with runner.start(["true"], Mode.BACKUP) as command:
        assert command.wait().ok


def test_in_cluster_credentials(
    apiserver: ApiServer, tls: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in the run's Pod: service account token and CA, POD_NAME, the namespace file."""
    import kubernetes.config.incluster_config as incluster

    from streamer.sources import exec as exec_source

    (tmp_path / "token").write_text(EXEC_TOKEN)
    (tmp_path / "namespace").write_text(NAMESPACE)
    monkeypatch.setattr(incluster, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster, "SERVICE_CERT_FILENAME", str(tls[1]))
    monkeypatch.setattr(exec_source, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "namespace")
    parts = urlsplit(apiserver.url)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", str(parts.hostname))
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(parts.port))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))  # must not be needed
    monkeypatch.setenv("POD_NAME", POD)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    runner = ExecRunner.from_environment(None, "main", None)
    assert runner.describe() == f"pod {NAMESPACE}/{POD} container main"
    with runner.start(["echo", "in-cluster"], Mode.BACKUP) as command:
        assert read_all(command) == b"in-cluster\n"
        assert command.wait().ok


def test_namespace_from_the_kubeconfig_context(
    kubeconfig: Path, apiserver: ApiServer, tls: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_kubeconfig(kubeconfig, apiserver.url, EXEC_TOKEN, namespace="ctx-ns", ca_file=tls[1])
    assert ExecRunner.from_environment("p", "c", None).namespace == "ctx-ns"
    write_kubeconfig(kubeconfig, apiserver.url, EXEC_TOKEN, ca_file=tls[1])
    assert ExecRunner.from_environment("p", "c", None).namespace == "default"


def test_no_pod_is_a_config_error(kubeconfig: Path) -> None:
    with pytest.raises(ConfigError, match="POD_NAME"):
        ExecRunner.from_environment(None, "main", NAMESPACE)


def test_no_credentials_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="no Kubernetes credentials"):
        ExecRunner.from_environment(POD, "main", NAMESPACE)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("users: [{name: u, user: {token: x}}\n", id="yaml-syntax-error"),
        pytest.param(
            "contexts: [{name: c, context: not-a-mapping}]\ncurrent-context: c\n",
            id="context-not-a-mapping",
        ),
    ],
)
def test_a_malformed_kubeconfig_is_a_config_error(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    (tmp_path / "kubeconfig").write_text(text)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    with pytest.raises(ConfigError, match="no usable kubeconfig"):
        ExecRunner.from_environment(POD, "main", NAMESPACE)


# -- the Status object ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param({"status": "Success"}, (ExitStatus(0, "exit code 0"), None), id="success"),
        pytest.param(
            {
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "message": "command terminated with non-zero exit code",
                "details": {"causes": [{"reason": "ExitCode", "message": "42"}]},
            },
            (ExitStatus(42, "exit code 42"), None),
            id="non-zero",
        ),
        pytest.param(
            {"status": "Failure", "reason": "NonZeroExitCode", "message": "no code given"},
            (None, "no code given"),
            id="non-zero-without-code",
        ),
        pytest.param(
            {
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "message": "no code given",
                "details": {"causes": [{"reason": "ExitCode", "message": None}]},
            },
            (None, "no code given"),
            id="non-zero-with-null-code",
        ),
        pytest.param(
            {
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "message": "no code given",
                "details": {"causes": 3},
            },
            (None, "no code given"),
            id="non-zero-with-causes-not-a-list",
        ),
        pytest.param(
            {"status": "Failure", "reason": "InternalError", "message": "OCI runtime exec failed"},
            (None, "OCI runtime exec failed"),
            id="internal-error",
        ),
        pytest.param(
            ["not", "a", "status"],
            (None, "the API server sent an unreadable exit status"),
            id="garbage",
        ),
    ],
)
def test_parse_status(status: object, expected: tuple[ExitStatus | None, str | None]) -> None:
    assert parse_status(status) == expected


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 65535, 65536, 256 * 1024 + 1])
def test_mask_matches_websocket_client(size: int) -> None:
    from websocket import ABNF

    data, key = os.urandom(size), os.urandom(4)
    assert mask(key, data) == ABNF.mask(key, data)
    assert mask(key, memoryview(data)) == ABNF.mask(key, data)
