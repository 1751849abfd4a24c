"""ExecRunner before the exec stream: the Pod, the container, credentials, the server's
version, and the retries of the API requests and the handshake, against the loopback server.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kubernetes import client as k8s_client

from streamer.errors import ConfigError, SourceError
from streamer.sources.base import Mode
from streamer.sources.exec import ExecRunner
from streamer.sources.exec.retry import RetryPolicy
from tests.exec.apiserver import DROP, V4, ApiServer, PodSpec, write_kubeconfig
from tests.exec.conftest import EXEC_TOKEN, NAMESPACE, POD
from tests.exec.test_command import read_all

pytestmark = pytest.mark.timeout(60)

#: The API policy's shape with waits short enough for tests that exhaust it.
FAST = RetryPolicy(attempts=3, first_wait=0.01, max_wait=0.02, jitter=0.01)

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
    runner = ExecRunner(k8s_client.ApiClient(configuration), NAMESPACE, POD, "main", retry=FAST)
    with pytest.raises(
        SourceError,
        match=r"cannot reach the Kubernetes API server at https://.*refused; tried 3 times$",
    ):
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
    assert "tried" not in str(info.value)  # a certificate problem is not retried


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

    from streamer.sources.exec import credentials

    (tmp_path / "token").write_text(EXEC_TOKEN)
    (tmp_path / "namespace").write_text(NAMESPACE)
    monkeypatch.setattr(incluster, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster, "SERVICE_CERT_FILENAME", str(tls[1]))
    monkeypatch.setattr(credentials, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "namespace")
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


# -- retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_a_transient_handshake_failure_is_retried(
    runner: ExecRunner, apiserver: ApiServer, status: int
) -> None:
    """No exec stream was opened, so the command never started: connecting again is safe."""
    apiserver.behaviour.exec_failures = [status]
    with runner.start(["echo", "up"], Mode.BACKUP) as command:
        assert read_all(command) == b"up\n"
        assert command.wait().ok
    assert apiserver.failed == [("exec", status)]
    assert len(apiserver.execs) == 1


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        pytest.param(
            403,
            r"cannot exec into pod \S+ container main: HTTP 403: injected: Forbidden; the "
            r"service account needs 'get' on pods and 'create' on pods/exec",
            id="forbidden",
        ),
        pytest.param(
            DROP,
            r"cannot exec into pod \S+ container main: the connection to the Kubernetes API "
            r"server at https://\S+ failed",
            id="dropped-after-the-request-the-command-may-have-started",
        ),
    ],
)
def test_a_permanent_handshake_failure_is_not_retried(
    runner: ExecRunner, apiserver: ApiServer, failure: int, message: str
) -> None:
    """The next attempt would succeed: only not trying again makes start() fail."""
    apiserver.behaviour.exec_failures = [failure]
    with pytest.raises(SourceError, match=message) as info:
        runner.start(["echo", "up"], Mode.BACKUP)
    assert "tried" not in str(info.value)
    assert apiserver.failed == [("exec", failure)]
    assert apiserver.execs == []


def test_transient_handshake_failures_give_up_after_the_policys_attempts(
    runner: ExecRunner, apiserver: ApiServer
) -> None:
    runner.retry = FAST
    apiserver.behaviour.exec_failures = [503] * 5
    with pytest.raises(
        SourceError,
        match=r"^cannot exec into pod \S+ container main: HTTP 503: injected: Service "
        r"Unavailable; tried 3 times$",
    ):
        runner.start(["echo", "up"], Mode.BACKUP)
    assert apiserver.failed == [("exec", 503)] * 3
    assert apiserver.execs == []


def test_a_transient_pod_read_is_retried(runner: ExecRunner, apiserver: ApiServer) -> None:
    runner.retry = FAST
    apiserver.behaviour.pod_failures = [503, 429]
    with runner.start(["echo", "up"], Mode.BACKUP) as command:
        assert read_all(command) == b"up\n"
        assert command.wait().ok
    assert apiserver.failed == [("pod", 503), ("pod", 429)]


def test_a_forbidden_pod_read_is_not_retried(runner: ExecRunner, apiserver: ApiServer) -> None:
    runner.retry = FAST
    apiserver.behaviour.pod_failures = [403]
    with pytest.raises(SourceError, match=rf"cannot read pod {NAMESPACE}/{POD}: HTTP 403"):
        runner.start(["echo", "up"], Mode.BACKUP)
    assert apiserver.failed == [("pod", 403)]
    assert apiserver.execs == []
