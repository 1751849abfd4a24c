"""Fixtures for the exec source: a loopback API server over TLS and a kubeconfig pointing at it.

The streamer reaches the endpoint through the real ``kubernetes`` client path: kubeconfig
loading, bearer-token auth, TLS verification against the kubeconfig's CA, and the WebSocket
handshake in ``create_websocket()``.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.sources.exec import ExecRunner
from tests.exec.apiserver import ApiServer, PodSpec, make_tls, write_kubeconfig

# The database fixtures (fresh MariaDB/PostgreSQL databases, dropped afterwards) are shared.
from tests.streamer.test_databases import mariadb, postgres  # noqa: F401

#: The bearer token of the loopback API server: tests assert it never appears in any output.
EXEC_TOKEN = "kube-TOKEN-DoNoTlEaK-93be1c0d"
NAMESPACE = "backups"
POD = "run-7f3c"


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    return make_tls(tmp_path_factory.mktemp("apiserver-tls"))


@pytest.fixture
def apiserver(tls: tuple[ssl.SSLContext, Path]) -> Iterator[ApiServer]:
    """A fresh endpoint; tests change ``apiserver.behaviour`` and ``apiserver.pods`` freely."""
    pods = {
        (NAMESPACE, POD): PodSpec(
            {"main": "running", "db": "running", "finished": "terminated", "starting": "waiting"}
        )
    }
    with ApiServer(EXEC_TOKEN, pods, tls=tls[0]) as server:
        yield server


@pytest.fixture
def kubeconfig(
    apiserver: ApiServer,
    tls: tuple[ssl.SSLContext, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """``KUBECONFIG`` pointing at the endpoint; no in-cluster or downward-API environment."""
    path = write_kubeconfig(tmp_path / "kubeconfig", apiserver.url, EXEC_TOKEN, ca_file=tls[1])
    for name in ("POD_NAME", "POD_NAMESPACE", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
def runner(kubeconfig: Path) -> ExecRunner:
    """An exec runner for the ``main`` container, built as the CLI builds it."""
    return ExecRunner.from_environment(POD, "main", NAMESPACE, ready_timeout=5.0)
