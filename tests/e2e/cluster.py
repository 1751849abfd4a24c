"""The kind cluster's tools and the suite's own look at it: pinned releases, kubectl, polling
with a deadline, port-forwards and what to show when something failed.

The suite acts on the cluster through the README's commands (:mod:`tests.e2e.shell`); what is
here reads it back to check what those commands did. Every failure fails the test with the
command and its own message (``pytrace=False``: the message is the point, not our traceback).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import platform
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
import requests
from pytest_kind import KindCluster

from tests.conftest import free_port
from tests.e2e.walkthrough import ARGO_VERSION, BUCKET, NAMESPACE, SCHEDULE

# --- pinned versions: change them here only (Argo's is in walkthrough.py, the README shows it) --

KIND_VERSION = "v0.33.0"
#: A node image built for that kind release (its release notes list them with digests).
#: Kubernetes >= 1.30 serves the exec protocol v5 that restores need to close stdin.
KIND_NODE_IMAGE = (
    "kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d"
)
KUBECTL_VERSION = "v1.34.11"
#: The CRDs of ServiceMonitor and PrometheusRule (not the operator): enough for the API server
#: to validate and store argo/monitoring/.
PROMETHEUS_OPERATOR_VERSION = "v0.82.2"
PROMETHEUS_CRDS = [
    "https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/"
    f"{PROMETHEUS_OPERATOR_VERSION}/example/prometheus-operator-crd/monitoring.coreos.com_{kind}.yaml"
    for kind in ("prometheusrules", "servicemonitors")
]

# --- timeouts (seconds) --------------------------------------------------------------------

#: Per test: the first one also pays for the cluster, the image and every install.
TEST_TIMEOUT = 3600
KUBECTL_TIMEOUT = 300
DOWNLOAD_TIMEOUT = 300
#: A backup or restore of the walkthrough's table, Pod start included.
RUN_TIMEOUT = 600
#: How often a poll looks again.
POLL = 2.0

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


def arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def kubectl(
    cluster: KindCluster, *args: str, input: str | None = None, timeout: float = KUBECTL_TIMEOUT
) -> str:
    """kubectl on the cluster; a failure fails the test with kubectl's message."""
    try:
        return str(cluster.kubectl(*args, input=input, timeout=timeout, stderr=subprocess.PIPE))
    except subprocess.CalledProcessError as exc:
        fail(f"`kubectl {shlex.join(args)}` exited {exc.returncode}:\n{exc.stderr}")
    except subprocess.TimeoutExpired:
        fail(f"`kubectl {shlex.join(args)}` did not finish within {timeout:.0f}s")


def get_json(cluster: KindCluster, *args: str) -> Any:
    """``kubectl get ARGS -o json``, parsed."""
    return json.loads(kubectl(cluster, "get", *args, "-o", "json"))


def absent(cluster: KindCluster, *args: str) -> bool:
    """Whether ``kubectl get ARGS`` finds nothing (NotFound), without failing the test."""
    try:
        cluster.kubectl("get", *args, "-o", "name", timeout=60, stderr=subprocess.PIPE)
    except subprocess.CalledProcessError as exc:
        if "NotFound" in exc.stderr or "not found" in exc.stderr:
            return True
        fail(f"`kubectl get {shlex.join(args)}` exited {exc.returncode}:\n{exc.stderr}")
    return False


def wait_until(
    check: Callable[[], T | None],
    what: str,
    *,
    timeout: float = RUN_TIMEOUT,
    diagnose: Callable[[], str] = lambda: "",
) -> T:
    """Poll ``check`` until it returns something other than None (or False); fail after
    ``timeout`` seconds saying what was waited for."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            fail(f"waited {timeout:.0f}s for {what}\n{diagnose()}")
        time.sleep(POLL)


# --- runs and workflows --------------------------------------------------------------------


def runs(cluster: KindCluster, schedule: str | None = None) -> dict[str, dict[str, Any]]:
    """The BackupRuns of the namespace (of one schedule), by name."""
    selector = ["-l", f"backup-operator.io/schedule={schedule}"] if schedule else []
    found = get_json(cluster, "backupruns", "-n", NAMESPACE, *selector)
    return {item["metadata"]["name"]: item for item in found["items"]}


def phase(run: dict[str, Any]) -> str:
    return str((run.get("status") or {}).get("phase") or "")


#: The phases a run never leaves.
FINAL = frozenset({"Succeeded", "Failed", "Error"})


def finished(cluster: KindCluster, name: str) -> dict[str, Any]:
    """The BackupRun ``name`` once its phase is final."""

    def check() -> dict[str, Any] | None:
        run = runs(cluster).get(name)
        return run if run is not None and phase(run) in FINAL else None

    return wait_until(
        check, f"BackupRun {name} to finish", diagnose=lambda: diagnostics(cluster, name)
    )


def new_run(cluster: KindCluster, before: set[str]) -> str:
    """The name of the schedule's one run that is not in ``before``, once the controller has
    recorded it."""

    def check() -> str | None:
        new = sorted(set(runs(cluster, SCHEDULE)) - before)
        if len(new) > 1:
            fail(f"one trigger, and {len(new)} new runs: {new}\n{diagnostics(cluster)}")
        return new[0] if new else None

    return wait_until(check, "the trigger's BackupRun", diagnose=lambda: diagnostics(cluster))


def stored_keys(minio: Any, prefix: str) -> set[str]:
    """The keys of the walkthrough's bucket under ``prefix``."""
    found = minio.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"] for item in found}


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    """A condition of the object's status ({} when it has none of that type)."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def diagnostics(cluster: KindCluster, workflow: str | None = None) -> str:
    """What went on: the runs, the controller's last log lines, and one run's conditions and
    Events, its Workflow's nodes and its Pod's logs. Never fails: it is shown when something
    else already did."""

    def best_effort(*args: str) -> str:
        try:
            return str(cluster.kubectl(*args, timeout=60, stderr=subprocess.STDOUT))
        except (subprocess.SubprocessError, OSError) as exc:
            return f"(`kubectl {shlex.join(args)}` failed: {exc})"

    parts = [
        best_effort("get", "backupruns,workflows", "-n", NAMESPACE, "-o", "wide"),
        best_effort("logs", "-n", "backup-operator", "deployment/backup-operator", "--tail=60"),
    ]
    if workflow:  # a run's name is its Workflow's
        parts.append(best_effort("describe", "backuprun", workflow, "-n", NAMESPACE))
        with contextlib.suppress(ValueError):
            status = json.loads(
                best_effort("get", "workflow", workflow, "-n", NAMESPACE, "-o", "json")
            )
            nodes = (status.get("status") or {}).get("nodes") or {}
            parts.append(
                "\n".join(
                    f"  node {n.get('displayName')}: {n.get('phase')} {n.get('message', '')}"
                    for n in nodes.values()
                )
            )
        pods = f"workflows.argoproj.io/workflow={workflow}"
        logs = ["logs", "-n", NAMESPACE, "-l", pods, "--all-containers", "--prefix", "--tail=40"]
        parts.append(best_effort(*logs))
    return "\n".join(parts)


# --- port-forwards -------------------------------------------------------------------------


def forward_target(command: str) -> tuple[str, str, int]:
    """The namespace, target and remote port of a README ``kubectl port-forward`` line."""
    args = shlex.split(command)[1:]  # after "kubectl"
    at = args.index("-n")
    namespace = args[at + 1]
    del args[at : at + 2]
    args.remove("port-forward")
    target, ports = args
    return namespace, target, int(ports.split(":")[1])


@contextlib.contextmanager
def port_forward(cluster: KindCluster, namespace: str, target: str, port: int) -> Iterator[int]:
    """``kubectl port-forward`` to a free local port, listening when entered, stopped on exit.

    (pytest-kind's ``port_forward`` restarts kubectl on every one of its retries and never
    waits for the processes it kills.)
    """
    local = free_port()
    forward = subprocess.Popen(
        [str(cluster.kubectl_path), "port-forward", "-n", namespace, target, f"{local}:{port}"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _listening(local):
            if forward.poll() is not None:
                fail(
                    f"kubectl port-forward {target} exited {forward.returncode}:\n{forward.communicate()[1]}"
                )
            if time.monotonic() > deadline:
                fail(f"kubectl port-forward {target} did not listen on {local} within 60s")
            time.sleep(0.2)
        yield local
    finally:
        forward.kill()
        forward.communicate(timeout=30)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# --- tools ---------------------------------------------------------------------------------


def argo_cli(home: Path) -> Path:
    """The argo CLI of the pinned release, downloaded once into ``home``."""
    path = home / f"argo-{ARGO_VERSION}"
    if path.exists():
        return path
    system = platform.system().lower()
    url = (
        f"https://github.com/argoproj/argo-workflows/releases/download/{ARGO_VERSION}/"
        f"argo-{system}-{arch()}.gz"
    )
    try:
        with requests.get(url, timeout=DOWNLOAD_TIMEOUT) as response:
            response.raise_for_status()
            binary = gzip.decompress(response.content)
    except (requests.RequestException, OSError) as exc:
        fail(f"downloading the argo CLI {ARGO_VERSION} from {url} failed: {exc}")
    partial = path.with_suffix(".tmp")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.rename(path)
    return path


def bin_dir(home: Path, tools: dict[str, Path]) -> Path:
    """A directory of the pinned tools under their plain names, to put first on PATH."""
    directory = home / "bin"
    directory.mkdir(parents=True, exist_ok=True)
    for name, target in tools.items():
        link = directory / name
        link.unlink(missing_ok=True)
        link.symlink_to(target.resolve())
    return directory


def events(cluster: KindCluster, name: str, reason: str) -> list[dict[str, Any]]:
    """The Events of one object of the namespace with one reason."""
    found = get_json(
        cluster, "events", "-n", NAMESPACE,
        "--field-selector", f"involvedObject.name={name},reason={reason}",
    )  # fmt: skip
    return list(found["items"])


def apply_urls(cluster: KindCluster, urls: Sequence[str]) -> None:
    """Server-side apply of published manifests (CRDs too large for a client-side apply)."""
    for url in urls:
        kubectl(cluster, "apply", "--server-side", "-f", url)
