"""Every object the install applies, and the per-namespace step, validates against the
Kubernetes API schemas of the oldest version we support (1.30) and of the newest that
``kubernetes-validate`` knows, strictly: an unknown field is an error, as it is for
``kubectl apply`` (strict field validation is its default).
"""

from __future__ import annotations

import copy
import importlib
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import missing
from tests.install.conftest import WORKFLOW_RBAC, find, load_yaml

OLDEST = "1.30"
NEWEST = "newest"
VERSIONS = [OLDEST, NEWEST]


def _validator() -> ModuleType:
    try:
        return importlib.import_module("kubernetes_validate")
    except ImportError:
        missing("the kubernetes-validate package of the test extra")
        raise


def _problems(obj: dict[str, Any], version: str) -> list[str]:
    kubernetes_validate = _validator()
    if version == NEWEST:
        version = kubernetes_validate.latest_version()
    where = f"{obj['kind']}/{obj['metadata']['name']} on {version}"
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(map(str, exc.absolute_path)) or "<root>"
        return [f"{where}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{where}: {exc.message}"]
    return []


def test_the_newest_version_is_newer_than_the_oldest() -> None:
    newest = _validator().latest_version()
    assert [int(n) for n in newest.split(".")[:2]] > [int(n) for n in OLDEST.split(".")]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_install_validates(installed: list[dict[str, Any]], version: str) -> None:
    problems = [p for obj in installed for p in _problems(obj, version)]
    assert problems == []


@pytest.mark.parametrize("version", VERSIONS)
def test_the_per_namespace_step_validates(version: str) -> None:
    objects = load_yaml(WORKFLOW_RBAC)
    assert [o["kind"] for o in objects] == ["ServiceAccount", "RoleBinding"]
    problems = [p for obj in objects for p in _problems(obj, version)]
    assert problems == []


@pytest.mark.parametrize("version", VERSIONS)
def test_an_unknown_field_is_refused(installed: list[dict[str, Any]], version: str) -> None:
    deployment = copy.deepcopy(find(installed, "Deployment", "backup-operator"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    crd = copy.deepcopy(
        find(installed, "CustomResourceDefinition", "backupruns.backup-operator.io")
    )
    crd["spec"]["scopes"] = "Namespaced"
    for broken, field in ((deployment, "securityContex"), (crd, "scopes")):
        (problem,) = _problems(broken, version)
        assert f"'{field}' was unexpected" in problem


def test_a_kind_unknown_to_the_version_is_refused() -> None:
    beta = {"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "old"}}
    (problem,) = _problems(beta, OLDEST)  # removed in 1.25
    assert "Couldn't find schema" in problem
