"""The stand-ins of ``tests/e2e/manifests/`` fit the design document's objects: checked here,
without a cluster (these tests are not opt-in).

The walkthrough applies them on a cluster that has no MySQL or MinIO of its own, and the kind
suite runs exactly that. So they must serve what ``argo/examples/mysql.yaml`` names (MinIO at
the storage's endpoint with its bucket, MySQL at the schedule's HOSTNAME with its database),
read the Secrets under the names and keys the walkthrough creates them with, pin their images,
and be valid Kubernetes objects.
"""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import missing
from tests.e2e import walkthrough as w

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / w.MANIFESTS
EXAMPLES = ROOT / "argo" / "examples" / "mysql.yaml"
FILES = sorted(MANIFESTS.glob("*.yaml"))


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _find(kind: str, name: str) -> dict[str, Any]:
    found = [
        o for p in FILES for o in _load(p) if (o["kind"], o["metadata"]["name"]) == (kind, name)
    ]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _examples() -> tuple[dict[str, Any], dict[str, Any]]:
    storage, schedule = _load(EXAMPLES)
    return storage, schedule


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["spec"]["template"]["spec"])


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _secret_keys(command: str) -> tuple[str, str, set[str]]:
    """The name, namespace and keys of a ``kubectl create secret generic`` command."""
    args = shlex.split(command)
    keys = {a.split("=", 2)[1] for a in args if a.startswith("--from-literal=")}
    return args[4], args[args.index("-n") + 1], keys


def _validator() -> ModuleType:
    try:
        return importlib.import_module("kubernetes_validate")
    except ImportError:
        missing("the kubernetes-validate package of the test extra")
        raise


def test_the_walkthrough_applies_every_stand_in_and_only_those() -> None:
    named = {
        arg
        for command in w.readme_commands()
        for arg in shlex.split(command.split("\n")[0], comments=False)
        if arg.startswith(f"{w.MANIFESTS}/")
    }
    assert named == {f"{w.MANIFESTS}/{p.name}" for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_validates_strictly(path: Path) -> None:
    validator = _validator()
    version = validator.latest_version()
    for obj in _load(path):
        try:
            validator.validate(obj, version, strict=True)
        except validator.ValidationError as exc:
            pytest.fail(f"{path.name}: {obj['kind']}/{obj['metadata']['name']}: {exc.message}")


def test_minio_serves_the_storages_endpoint_and_bucket() -> None:
    storage, _ = _examples()
    endpoint = urlsplit(storage["spec"]["parameters"]["endpoint"])
    service = _find("Service", "minio")
    name, namespace = str(endpoint.hostname).split(".")[:2]
    assert (service["metadata"]["name"], service["metadata"]["namespace"]) == (name, namespace)
    assert [p["port"] for p in service["spec"]["ports"]] == [endpoint.port]
    deployment = _find("Deployment", "minio")
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    (job_container,) = _pod(_find("Job", "make-bucket"))["containers"]
    assert job_container["command"][-1] == f"minio/{storage['spec']['parameters']['bucket']}"
    assert storage["spec"]["parameters"]["bucket"] == w.BUCKET
    server = urlsplit(_env(job_container)["MC_HOST_minio"].replace("$(", "").replace(")", ""))
    assert (server.hostname, server.port) == (endpoint.hostname, endpoint.port)


def test_minio_reads_the_storages_credentials_as_the_walkthrough_creates_them() -> None:
    storage, _ = _examples()
    credentials = storage["spec"]["credentials"]
    name, namespace, keys = _secret_keys(w.MINIO_SECRET)
    assert (name, namespace) == (credentials["name"], credentials["namespace"])
    for obj in (_find("Deployment", "minio"), _find("Job", "make-bucket")):
        for container in _pod(obj)["containers"]:
            refs = [v["secretKeyRef"] for v in _env(container).values() if isinstance(v, dict)]
            assert refs, container["name"]
            assert {r["name"] for r in refs} == {name}
            assert (
                {r["key"] for r in refs} == keys == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
            )


def test_mysql_serves_the_schedules_database_with_its_credentials() -> None:
    _, schedule = _examples()
    (sidecar,) = schedule["spec"]["template"]["spec"]["template"]["spec"]["containers"]
    env = _env(sidecar)
    service = _find("Service", "mysql")
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}"
    assert host == env["HOSTNAME"] == f"mysql.{w.NAMESPACE}"
    (server,) = _pod(_find("Deployment", "mysql"))["containers"]
    assert server["image"] == sidecar["image"], "client and server are the same MySQL"
    server_env = _env(server)
    assert server_env["MYSQL_DATABASE"] == env["DATABASE"]
    name, namespace, keys = _secret_keys(w.MYSQL_SECRET)
    assert namespace == w.NAMESPACE
    sidecar_refs = {
        (v["secretKeyRef"]["name"], v["secretKeyRef"]["key"])
        for v in env.values()
        if isinstance(v, dict)
    }
    assert sidecar_refs == {(name, key) for key in keys}
    assert server_env["MYSQL_ROOT_PASSWORD"]["secretKeyRef"] == {"name": name, "key": "password"}
    assert f"--from-literal=username={w.MYSQL_USER}" in w.MYSQL_SECRET
    assert w.MYSQL_USER == "root", "the stand-in's only user is root"


def test_every_image_is_pinned_and_minio_is_one_image() -> None:
    images = {
        c["image"]
        for p in FILES
        for o in _load(p)
        if "template" in o["spec"]
        for c in _pod(o)["containers"]
    }
    assert all(":" in i.rsplit("/", 1)[-1] and not i.endswith(":latest") for i in images), images
    minio = {c["image"] for kind, name in (("Deployment", "minio"), ("Job", "make-bucket"))
             for c in _pod(_find(kind, name))["containers"]}  # fmt: skip
    assert len(minio) == 1, minio
