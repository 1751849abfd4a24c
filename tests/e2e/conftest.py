"""The kind suite's session: a preflight check, a kind cluster, and the README's walkthrough up
to its first backup, each step a fixture built on the one before.

The cluster is pytest-kind's :class:`~pytest_kind.KindCluster` with the pinned kind, node image
and kubectl (:mod:`tests.e2e.cluster`). The README's commands then run as written
(:class:`~tests.e2e.shell.Shell`): Argo Workflows, the project's image built from the Dockerfile
and loaded into kind, the install through the README's overlay (so the controller and every
Workflow it renders run that image), MinIO and MySQL from ``tests/e2e/manifests/``, the
workflow RBAC, and the design document's objects as they are (``argo/examples/mysql.yaml``).
The suite reads MinIO with boto3 through ``kubectl port-forward`` and MySQL through
``kubectl exec``.

A step that fails says which command it was, with kubectl's or docker's own message, the
controller's log and the runs. The walkthrough starts from an empty cluster: a kept cluster
(``--keep-cluster``) is for looking around afterwards, and a second session refuses it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from pytest_kind import KindCluster

from tests.e2e import walkthrough as w
from tests.e2e.cluster import (
    KIND_NODE_IMAGE,
    KIND_VERSION,
    KUBECTL_VERSION,
    absent,
    arch,
    argo_cli,
    bin_dir,
    diagnostics,
    fail,
    kubectl,
    port_forward,
)
from tests.e2e.mysql import MySQL
from tests.e2e.shell import Shell

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 1200


# --- preflight -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker() -> str:
    """The docker command, after checking that its daemon answers and that the README matches
    the suite's commands.

    Runs before anything is downloaded or created, so a machine without Docker fails at once
    with a sentence instead of a traceback from inside kind.
    """
    if w.readme_sections((ROOT / "README.md").read_text()) != w.SECTIONS:
        fail(
            "the README's walkthrough and tests/e2e/walkthrough.py differ: run tests/test_readme.py"
        )
    if shutil.which("bash") is None:
        fail("the kind tests run the README's commands with bash, and there is no `bash` on PATH")
    path = shutil.which("docker")
    if path is None:
        fail(
            "the kind tests need Docker, and there is no `docker` command on PATH: install "
            "Docker and start its daemon, or run the suite without --kind"
        )
    try:
        done = subprocess.run(
            [path, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        fail("`docker info` did not answer within 60s: is the Docker daemon running?")
    if done.returncode != 0:
        fail(f"the kind tests need a running Docker daemon; `docker info` says:\n{done.stderr}")
    return path


# --- the cluster ---------------------------------------------------------------------------


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
            f"kind-{system}-{arch()}",
        )
        env.setenv(
            "KUBECTL_DOWNLOAD_URL",
            f"https://dl.k8s.io/release/{KUBECTL_VERSION}/bin/{system}/{arch()}/kubectl",
        )
        try:
            kind.ensure_kubectl()
            kind.create()
        except requests.RequestException as exc:
            fail(f"downloading kind {KIND_VERSION} or kubectl {KUBECTL_VERSION} failed: {exc}")
        except subprocess.CalledProcessError as exc:
            fail(
                f"`{' '.join(map(str, exc.cmd))}` exited {exc.returncode}; kind's own "
                "message is in the captured stderr above"
            )
    if not absent(kind, "namespace", w.NAMESPACE):
        fail(
            f"the kind cluster {name!r} ran the walkthrough before (it has the namespace "
            f"{w.NAMESPACE}); the walkthrough starts from an empty cluster: delete it "
            f"(`{kind.kind_path} delete cluster --name {name}`) or pass another --cluster-name"
        )
    try:
        kubectl(kind, "wait", "--for=condition=Ready", "node", "--all", "--timeout=300s")
        yield kind
    finally:
        if not option("keep_cluster"):
            kind.delete()


@pytest.fixture(scope="session")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of what the README's commands read, to run them from: the walkthrough
    writes ``dev-install/`` into its working directory, and must not write into ours."""
    copy = tmp_path_factory.mktemp("checkout")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")
    for entry in w.READS:
        source, target = ROOT / entry, copy / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    return copy


@pytest.fixture(scope="session")
def shell(cluster: KindCluster, checkout: Path) -> Shell:
    """The terminal of the walkthrough: the pinned kind, kubectl and argo first on PATH, and
    only the kind cluster's kubeconfig, so no command can reach another cluster."""
    home = cluster.path.resolve()
    tools = bin_dir(
        home,
        {"kind": cluster.kind_path, "kubectl": cluster.kubectl_path, "argo": argo_cli(home)},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGO_", "KUBECONFIG"))}
    env.update(
        PATH=f"{tools}{os.pathsep}{os.environ.get('PATH', '')}",
        KUBECONFIG=str(cluster.kubeconfig_path.resolve()),
        KIND_CLUSTER_NAME=cluster.name,
    )
    return Shell(checkout, env, diagnose=lambda: diagnostics(cluster))


# --- the walkthrough up to the first backup ------------------------------------------------


@pytest.fixture(scope="session")
def operator(shell: Shell) -> None:
    """README "Install", with "An image of your own" in place of ``kubectl apply -k argo/``."""
    for command in (w.CREATE_ARGO_NAMESPACE, w.INSTALL_ARGO, w.WAIT_ARGO):
        shell.run(command)
    shell.run(w.BUILD_IMAGE, timeout=BUILD_TIMEOUT)
    for command in (w.LOAD_IMAGE, w.MAKE_OVERLAY_DIR, w.WRITE_OVERLAY, w.INSTALL_OVERLAY):
        shell.run(command)
    shell.run(w.WAIT_CONTROLLER)


@pytest.fixture(scope="session")
def stand_ins(shell: Shell) -> None:
    """README "The bucket, the database and the namespace"."""
    for command in (
        w.CREATE_MINIO_NAMESPACE,
        w.MINIO_SECRET,
        w.CREATE_NAMESPACE,
        w.MYSQL_SECRET,
        w.APPLY_STAND_INS,
        w.WAIT_MINIO,
        w.MAKE_BUCKET,
        w.WAIT_BUCKET,
        w.WAIT_MYSQL,
        w.WORKFLOW_RBAC,
    ):
        shell.run(command)


@pytest.fixture(scope="session")
def examples(operator: None, stand_ins: None, shell: Shell) -> None:
    """README "The first backup" up to the trigger: the design document's objects, Ready."""
    for command in (w.APPLY_EXAMPLES, w.WAIT_STORAGE, w.WAIT_SCHEDULE):
        shell.run(command)


@pytest.fixture(scope="session")
def minio(cluster: KindCluster, stand_ins: None) -> Iterator[Any]:
    """A boto3 S3 client of the walkthrough's MinIO, through ``kubectl port-forward``; the
    bucket the README's Job made is there."""
    with port_forward(cluster, w.MINIO_NAMESPACE, "service/minio", 9000) as port:
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id=w.MINIO_ACCESS_KEY,
            aws_secret_access_key=w.MINIO_SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
        )
        with contextlib.closing(client):
            client.head_bucket(Bucket=w.BUCKET)
            yield client


@pytest.fixture(scope="session")
def mysql(cluster: KindCluster, stand_ins: None) -> MySQL:
    return MySQL(cluster)
