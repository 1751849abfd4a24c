"""The kind cluster of the end-to-end tests, and what runs on it.

Session fixtures, each built on the one before: a preflight check (Docker, the Dockerfile), a
kind cluster (pytest-kind's :class:`~pytest_kind.KindCluster`, pinned kind, node image and
kubectl), the project's image built and loaded into the nodes, Argo Workflows, MinIO (reached
from the tests through ``kubectl port-forward``, for boto3), MySQL, and the namespace the SEED.md objects
live in. Every step has its own timeout, and a failing step says which one it was and shows
kubectl's or docker's own message.

The SEED.md objects are used as written, apart from the streamer image (``--image``) and
``suspend: true`` on the schedule, because the tests submit the runs themselves. MySQL serves
``backend_db`` as ``mysql.development``, the address SEED.md names, so the commands run
unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import boto3
import pytest
import requests
import yaml
from botocore.config import Config
from click.testing import CliRunner
from pytest_kind import KindCluster

from generator.cli import main as backup_gen
from generator.models import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from tests.conftest import free_port
from tests.generator.conftest import GOLDEN, ROOT

# --- pinned versions: change them here only ------------------------------------------------

#: Argo Workflows release whose official install manifest is applied (server-side: since v4 it
#: carries the full CRDs, too large for a client-side apply).
ARGO_VERSION = "v4.0.5"
ARGO_MANIFEST = (
    f"https://github.com/argoproj/argo-workflows/releases/download/{ARGO_VERSION}/install.yaml"
)
KIND_VERSION = "v0.33.0"
#: A node image built for that kind release (its release notes list them with digests).
#: Kubernetes >= 1.30 serves the exec protocol v5 that restores need to close stdin.
KIND_NODE_IMAGE = (
    "kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d"
)
KUBECTL_VERSION = "v1.34.11"
#: MinIO's images left Docker Hub; quay.io serves the last community release. Any image that
#: runs ``minio server DIR`` can stand in (E2E_MINIO_IMAGE).
MINIO_IMAGE = os.environ.get("E2E_MINIO_IMAGE", "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z")
#: The server, and the client the SEED.md sidecar runs (``mysql:8.3.0``), are the same image.
MYSQL_IMAGE = "mysql:8.3.0"
#: The streamer image built from the Dockerfile; not ``latest``, so Pods never try to pull it.
IMAGE = "backup-operator:e2e"

# --- where things live ---------------------------------------------------------------------

#: The runs' namespace, and MySQL's: SEED.md's HOSTNAME is ``mysql.development``.
NAMESPACE = "development"
MINIO_NAMESPACE = "minio"
BUCKET = "backups"
DATABASE = "backend_db"
#: Throwaway credentials of a throwaway cluster; fixed so that a kept cluster can be reused.
MINIO_ACCESS_KEY = "backup-operator-e2e"
MINIO_SECRET_KEY = "e2e-only-not-a-secret-4a7c"
#: The Secret ``minio-credentials``, under the key names runs read by default; MinIO's root user
#: is made from it too.
MINIO_CREDENTIALS = {DEFAULT_ACCESS_KEY: MINIO_ACCESS_KEY, DEFAULT_SECRET_KEY: MINIO_SECRET_KEY}
MYSQL_ROOT_PASSWORD = "e2e-only-mysql-root"

# --- timeouts (seconds) --------------------------------------------------------------------

BUILD_TIMEOUT = 1200
ROLLOUT_TIMEOUT = 600
KUBECTL_TIMEOUT = 300
WORKFLOW_TIMEOUT = 600
#: Per test: the first one also pays for the cluster, the image and every install.
TEST_TIMEOUT = 3600


def _fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


def run(args: Sequence[str], *, timeout: float, input: str | None = None) -> str:
    """Run a command; on failure, fail the test with the command and its own output."""
    try:
        done = subprocess.run(
            list(args), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        _fail(f"`{' '.join(args)}` did not finish within {timeout:.0f}s")
    if done.returncode != 0:
        _fail(f"`{' '.join(args)}` exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


# --- preflight -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker() -> str:
    """The docker command, after checking that its daemon answers and the Dockerfile exists.

    Runs before anything is downloaded or created, so a machine without Docker fails at once
    with a sentence instead of a traceback from inside kind.
    """
    path = shutil.which("docker")
    if path is None:
        _fail(
            "the kind tests need Docker, and there is no `docker` command on PATH: install "
            "Docker and start its daemon, or run the suite without --kind"
        )
    try:
        done = subprocess.run(
            [path, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _fail("`docker info` did not answer within 60s: is the Docker daemon running?")
    if done.returncode != 0:
        _fail(f"the kind tests need a running Docker daemon; `docker info` says:\n{done.stderr}")
    if not (ROOT / "Dockerfile").is_file():
        _fail(f"no Dockerfile at {ROOT}: the streamer image the workflows run is built from it")
    return path


# --- the cluster ---------------------------------------------------------------------------


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, docker: str) -> Iterator[KindCluster]:
    """A kind cluster; pytest-kind's options apply (--cluster-name, --keep-cluster,
    --kind-image, --kind-bin, --kind-kubectl-bin). Deleted at the end unless kept."""
    option = request.config.getoption
    name = str(option("cluster_name"))
    home = Path(".pytest-kind") / name
    kind_bin, kubectl_bin = option("kind_bin"), option("kind_kubectl_bin")
    kubeconfig = option("kubeconfig")
    kind = KindCluster(
        name,
        Path(kubeconfig) if kubeconfig else None,
        image=option("kind_image") or KIND_NODE_IMAGE,
        kind_path=Path(kind_bin) if kind_bin else home / f"kind-{KIND_VERSION}",
        kubectl_path=Path(kubectl_bin) if kubectl_bin else home / f"kubectl-{KUBECTL_VERSION}",
    )
    system = platform.system().lower()
    with pytest.MonkeyPatch.context() as env:
        # pytest-kind downloads its own (old) defaults; these name the pinned releases.
        env.setenv(
            "KIND_DOWNLOAD_URL",
            f"https://github.com/kubernetes-sigs/kind/releases/download/{KIND_VERSION}/"
            f"kind-{system}-{_arch()}",
        )
        env.setenv(
            "KUBECTL_DOWNLOAD_URL",
            f"https://dl.k8s.io/release/{KUBECTL_VERSION}/bin/{system}/{_arch()}/kubectl",
        )
        try:
            kind.ensure_kubectl()
            kind.create()
        except requests.RequestException as exc:
            _fail(f"downloading kind {KIND_VERSION} or kubectl {KUBECTL_VERSION} failed: {exc}")
        except subprocess.CalledProcessError as exc:
            _fail(
                f"`{' '.join(map(str, exc.cmd))}` exited {exc.returncode}; kind's own "
                "message is in the captured stderr above"
            )
    try:
        kubectl(kind, "wait", "--for=condition=Ready", "node", "--all", "--timeout=300s")
        yield kind
    finally:
        if not option("keep_cluster"):
            kind.delete()


def kubectl(
    cluster: KindCluster, *args: str, input: str | None = None, timeout: float = KUBECTL_TIMEOUT
) -> str:
    """kubectl on the cluster; a failure fails the test with kubectl's message."""
    try:
        return str(cluster.kubectl(*args, input=input, timeout=timeout, stderr=subprocess.PIPE))
    except subprocess.CalledProcessError as exc:
        _fail(f"`kubectl {' '.join(args)}` exited {exc.returncode}:\n{exc.stderr}")
    except subprocess.TimeoutExpired:
        _fail(f"`kubectl {' '.join(args)}` did not finish within {timeout:.0f}s")


def apply(cluster: KindCluster, docs: Sequence[dict[str, Any]], *extra: str) -> None:
    kubectl(cluster, "apply", *extra, "-f", "-", input=yaml.safe_dump_all(docs))


def rollout(cluster: KindCluster, namespace: str, deployment: str) -> None:
    """Wait until a Deployment's Pods are ready (image pulls included)."""
    kubectl(
        cluster,
        "rollout",
        "status",
        f"deployment/{deployment}",
        "-n",
        namespace,
        f"--timeout={ROLLOUT_TIMEOUT}s",
        timeout=ROLLOUT_TIMEOUT + 30,
    )


@contextlib.contextmanager
def port_forward(cluster: KindCluster, namespace: str, target: str, port: int) -> Iterator[int]:
    """``kubectl port-forward`` to a local port, ready when entered, stopped on exit.

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
                _fail(
                    f"kubectl port-forward {target} exited {forward.returncode}:\n"
                    f"{forward.communicate()[1]}"
                )
            if time.monotonic() > deadline:
                _fail(f"kubectl port-forward {target} did not listen on {local} within 60s")
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


def namespace_doc(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def secret_doc(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data,
    }


def deployment_doc(
    name: str, namespace: str, container: dict[str, Any], volumes: list[dict[str, Any]]
) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, **container}], "volumes": volumes},
            },
        },
    }


def service_doc(name: str, namespace: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": port}]},
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


# --- what runs on it -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def image(cluster: KindCluster, docker: str) -> str:
    """The project's image, built from the Dockerfile and loaded into the kind nodes."""
    run(
        [docker, "build", "--tag", IMAGE, "--file", str(ROOT / "Dockerfile"), str(ROOT)],
        timeout=BUILD_TIMEOUT,
    )
    cluster.load_docker_image(IMAGE)
    return IMAGE


@pytest.fixture(scope="session")
def argo(cluster: KindCluster) -> str:
    """Argo Workflows from its official install manifest, controller ready; its version."""
    apply(cluster, [namespace_doc("argo")])
    kubectl(
        cluster, "apply", "--server-side", "--force-conflicts", "-n", "argo", "-f", ARGO_MANIFEST
    )
    kubectl(
        cluster,
        "wait",
        "--for=condition=Established",
        "--timeout=120s",
        "crd/workflows.argoproj.io",
        "crd/cronworkflows.argoproj.io",
        "crd/workflowtemplates.argoproj.io",
    )
    rollout(cluster, "argo", "workflow-controller")
    return ARGO_VERSION


@pytest.fixture(scope="session")
def minio(cluster: KindCluster) -> Iterator[Any]:
    """MinIO in namespace ``minio`` with the ``backups`` bucket; yields a boto3 S3 client that
    reaches it through ``kubectl port-forward``."""
    server = {
        "image": MINIO_IMAGE,
        "args": ["server", "/data", "--address", ":9000"],
        "env": [
            _secret_env("MINIO_ROOT_USER", "minio-credentials", DEFAULT_ACCESS_KEY),
            _secret_env("MINIO_ROOT_PASSWORD", "minio-credentials", DEFAULT_SECRET_KEY),
        ],
        "ports": [{"containerPort": 9000}],
        "readinessProbe": {"httpGet": {"path": "/minio/health/ready", "port": 9000}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    apply(
        cluster,
        [
            namespace_doc(MINIO_NAMESPACE),
            secret_doc("minio-credentials", MINIO_NAMESPACE, MINIO_CREDENTIALS),
            deployment_doc("minio", MINIO_NAMESPACE, server, [{"name": "data", "emptyDir": {}}]),
            service_doc("minio", MINIO_NAMESPACE, 9000),
        ],
    )
    rollout(cluster, MINIO_NAMESPACE, "minio")
    with port_forward(cluster, MINIO_NAMESPACE, "service/minio", 9000) as port:
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id=MINIO_ACCESS_KEY,
            aws_secret_access_key=MINIO_SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
        )
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=BUCKET)
        yield client
        client.close()


@dataclass(frozen=True)
class MySQL:
    """The MySQL server of SEED.md (``mysql.development``), driven through ``kubectl exec``."""

    cluster: KindCluster

    def sql(self, statements: str) -> str:
        """Run SQL in ``backend_db``; tab-separated rows, no header."""
        return kubectl(
            self.cluster,
            "exec",
            "-i",
            "-n",
            NAMESPACE,
            "deployment/mysql",
            "--",
            "sh",
            "-c",
            f'mysql -uroot -p"$MYSQL_ROOT_PASSWORD" --batch --skip-column-names {DATABASE}',
            input=statements,
        )


@pytest.fixture(scope="session")
def mysql(cluster: KindCluster) -> MySQL:
    """MySQL serving ``backend_db`` in namespace ``development``, with the Secret
    ``mysql-credentials`` (username, password) that the SEED.md sidecar reads."""
    server = {
        "image": MYSQL_IMAGE,
        "env": [
            _secret_env("MYSQL_ROOT_PASSWORD", "mysql-credentials", "password"),
            {"name": "MYSQL_DATABASE", "value": DATABASE},
        ],
        "ports": [{"containerPort": 3306}],
        # The image's entrypoint initialises with networking off; TCP answers once it is done.
        "readinessProbe": {"tcpSocket": {"port": 3306}, "periodSeconds": 3},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}],
    }
    apply(
        cluster,
        [
            namespace_doc(NAMESPACE),
            secret_doc(
                "mysql-credentials",
                NAMESPACE,
                {"username": "root", "password": MYSQL_ROOT_PASSWORD},
            ),
            deployment_doc("mysql", NAMESPACE, server, [{"name": "data", "emptyDir": {}}]),
            service_doc("mysql", NAMESPACE, 3306),
        ],
    )
    rollout(cluster, NAMESPACE, "mysql")
    return MySQL(cluster)


# --- the product ---------------------------------------------------------------------------


def render(image: str, docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``backup-gen render`` of API objects, as the Argo objects it prints."""
    result = CliRunner().invoke(
        backup_gen,
        ["render", "-f", "-", "--namespace", NAMESPACE, "--image", image],
        input=yaml.safe_dump_all(docs),
    )
    if result.exit_code != 0:
        _fail(f"backup-gen render exited {result.exit_code}:\n{result.output}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@dataclass(frozen=True)
class Seed:
    """The SEED.md objects as applied, and the Argo objects backup-gen rendered from them."""

    storage: dict[str, Any]
    schedule: dict[str, Any]
    rendered: list[dict[str, Any]]

    def argo(self, kind: str) -> dict[str, Any]:
        return next(d for d in self.rendered if d["kind"] == kind)


@pytest.fixture(scope="session")
def seed(cluster: KindCluster, image: str, argo: str, minio: Any, mysql: MySQL) -> Seed:
    """The CRDs and the workflow RBAC installed, and the SEED.md objects applied with the Argo
    objects ``backup-gen render`` makes of them (CronWorkflow, restore WorkflowTemplate)."""
    kubectl(cluster, "apply", "-f", str(ROOT / "crds"))
    kubectl(
        cluster,
        "wait",
        "--for=condition=Established",
        "--timeout=120s",
        "crd/backupstorages.backup-operator.io",
        "crd/backupschedules.backup-operator.io",
        "crd/backupruns.backup-operator.io",
    )
    kubectl(cluster, "apply", "-f", str(ROOT / "argo" / "workflow-clusterrole.yaml"))
    kubectl(cluster, "apply", "-n", NAMESPACE, "-f", str(ROOT / "argo" / "namespace"))
    # Runs read the storage's credentials Secret in their own namespace.
    apply(cluster, [secret_doc("minio-credentials", NAMESPACE, MINIO_CREDENTIALS)])

    storage, schedule = yaml.safe_load_all((GOLDEN / "seed.in.yaml").read_text())
    schedule["spec"]["suspend"] = True  # the tests submit runs; the cron must not add its own
    apply(cluster, [storage])
    apply(cluster, [schedule], "-n", NAMESPACE)
    rendered = render(image, [storage, schedule])
    apply(cluster, rendered)
    return Seed(storage, schedule, rendered)


# --- workflows -----------------------------------------------------------------------------


def submit(cluster: KindCluster, workflow: dict[str, Any]) -> str:
    """Create a Workflow (``generateName`` allowed); its name."""
    return kubectl(
        cluster,
        "create",
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.metadata.name}",
        "-f",
        "-",
        input=yaml.safe_dump(workflow),
    ).strip()


def workflow_from_cron(cron: dict[str, Any]) -> dict[str, Any]:
    """The Workflow a CronWorkflow spawns when it fires (``argo submit --from cronwf/NAME``)."""
    meta = cron["spec"].get("workflowMetadata", {})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "generateName": f"{cron['metadata']['name']}-",
            "labels": meta.get("labels", {}),
            "annotations": meta.get("annotations", {}),
        },
        "spec": cron["spec"]["workflowSpec"],
    }


def workflow_from_template(template: str, **parameters: str) -> dict[str, Any]:
    """``argo submit --from workflowtemplate/TEMPLATE -p NAME=VALUE…`` as an object."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": f"{template}-"},
        "spec": {
            "workflowTemplateRef": {"name": template},
            "arguments": {
                "parameters": [{"name": k, "value": v} for k, v in sorted(parameters.items())]
            },
        },
    }


def diagnostics(cluster: KindCluster, name: str) -> str:
    """What went on in a workflow: its status, node messages and the last lines of its Pods."""
    lines = []
    with contextlib.suppress(subprocess.SubprocessError, ValueError):
        found = cluster.kubectl(
            "get",
            "workflow",
            name,
            "-n",
            NAMESPACE,
            "-o",
            "json",
            timeout=60,
            stderr=subprocess.PIPE,
        )
        status = json.loads(found).get("status", {})
        lines.append(f"workflow {name}: {status.get('phase')} {status.get('message', '')}")
        for node in status.get("nodes", {}).values():
            lines.append(
                f"  node {node.get('displayName')}: {node.get('phase')} {node.get('message', '')}"
            )
    with contextlib.suppress(subprocess.SubprocessError):
        lines.append(
            cluster.kubectl(
                "logs",
                "-n",
                NAMESPACE,
                "-l",
                f"workflows.argoproj.io/workflow={name}",
                "--all-containers",
                "--prefix",
                "--tail=40",
                timeout=60,
                stderr=subprocess.STDOUT,
            )
        )
    return "\n".join(lines)


def wait_for(cluster: KindCluster, name: str, timeout: float = WORKFLOW_TIMEOUT) -> dict[str, Any]:
    """The Workflow once it has finished (Succeeded, Failed or Error)."""
    deadline = time.monotonic() + timeout
    while True:
        workflow: dict[str, Any] = json.loads(
            kubectl(cluster, "get", "workflow", name, "-n", NAMESPACE, "-o", "json")
        )
        phase = workflow.get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed", "Error"):
            return workflow
        if time.monotonic() > deadline:
            _fail(f"still {phase or 'Pending'} after {timeout:.0f}s\n{diagnostics(cluster, name)}")
        time.sleep(5)


def output_parameters(workflow: dict[str, Any]) -> dict[str, str]:
    """The output parameters of the workflow's Pod node (the backup step)."""
    for node in workflow.get("status", {}).get("nodes", {}).values():
        parameters = node.get("outputs", {}).get("parameters")
        if parameters:
            return {p["name"]: p.get("value", "") for p in parameters}
    return {}
