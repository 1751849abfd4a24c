"""Least privilege: the controller's ClusterRole names exactly the resources the controller's
code touches (``generator.controller.kube.RESOURCES``, what kopf watches), with no wildcard, no
escalation verb, nothing on Pods; the workflow permissions are a ClusterRole bound only per
namespace; every rule says why in a comment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest

from generator.controller.kube import RESOURCES
from generator.controller.operator import registry_for
from generator.controller.reconciler import Controller
from generator.render import DEFAULT_SERVICE_ACCOUNT
from tests.install.conftest import ARGO, WORKFLOW_RBAC, find, load_yaml

CONTROLLER = "backup-operator"
WORKFLOW = "backup-operator-workflow"
#: Verbs that let a holder grant itself more than it has, or act as someone else.
ESCALATING = {"bind", "escalate", "impersonate", "*"}
#: kopf's own needs beyond the controller's kinds: it watches CRDs to see kinds added later.
KOPF = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}


def _grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs, over all rules of ``role``."""
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames, URLs
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _watched() -> set[tuple[str, str]]:
    """(group, plural) of everything kopf indexes or watches for the controller."""
    registry = registry_for(cast(Controller, object()))  # handlers are only listed, never run
    handlers = [*registry._indexing.get_all_handlers(), *registry._watching.get_all_handlers()]
    assert handlers, "kopf's registry API changed: no handlers found"
    return {(h.selector.group, h.selector.any_name) for h in handlers}


@pytest.fixture(scope="module")
def controller_role(installed: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    return _grants(find(installed, "ClusterRole", CONTROLLER))


def test_the_controller_role_covers_exactly_the_kinds_it_handles(
    controller_role: dict[tuple[str, str], set[str]],
) -> None:
    handled = {(_group(v), plural) for (v, _), (plural, _) in RESOURCES.items()}
    statuses = {
        (group, f"{plural}/status") for group, plural in handled if group == "backup-operator.io"
    }
    assert set(controller_role) == handled | statuses | set(KOPF)


def test_kopf_may_list_and_watch_what_it_watches(
    controller_role: dict[tuple[str, str], set[str]],
) -> None:
    watched = _watched()
    assert ("argoproj.io", "workflows") in watched
    for resource in watched:
        assert {"list", "watch"} <= controller_role.get(resource, set()), resource
    for resource, verbs in KOPF.items():
        assert controller_role[resource] == verbs


def test_the_controller_role_has_no_wildcard_nor_escalation(
    controller_role: dict[tuple[str, str], set[str]],
) -> None:
    for (group, resource), verbs in controller_role.items():
        assert "*" not in (group, resource)
        assert not verbs & ESCALATING, (resource, verbs)
    assert not any(resource.startswith("pods") for _, resource in controller_role)


def test_secrets_are_read_by_name_only(controller_role: dict[tuple[str, str], set[str]]) -> None:
    # A listed or watched Secret would sit in the controller's memory and be printable.
    assert controller_role[("", "secrets")] == {"get", "create", "patch", "delete"}


def test_only_the_controller_is_bound_cluster_wide(installed: list[dict[str, Any]]) -> None:
    bindings = [o for o in installed if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert [b["metadata"]["name"] for b in bindings] == [CONTROLLER]
    (binding,) = bindings
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": CONTROLLER,
    }
    deployment = find(installed, "Deployment", CONTROLLER)
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    namespace = deployment["metadata"]["namespace"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": namespace}
    ]
    find(installed, "ServiceAccount", account)


def test_the_workflow_role_is_bound_per_namespace_to_the_rendered_account(
    installed: list[dict[str, Any]],
) -> None:
    role = _grants(find(installed, "ClusterRole", WORKFLOW))
    assert role == {
        ("", "pods"): {"get"},
        ("", "pods/exec"): {"create", "get"},
        ("argoproj.io", "workflowtaskresults"): {"create", "patch"},
    }
    account, binding = load_yaml(WORKFLOW_RBAC)
    assert account["kind"] == "ServiceAccount"
    assert account["metadata"]["name"] == DEFAULT_SERVICE_ACCOUNT
    assert binding["kind"] == "RoleBinding"  # a RoleBinding: the grant holds in its namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": WORKFLOW,
    }
    # No namespace anywhere: `kubectl apply -n NS` puts both, and the subject, in NS.
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": DEFAULT_SERVICE_ACCOUNT}]
    assert "namespace" not in account["metadata"]
    assert "namespace" not in binding["metadata"]


def _uncommented_rules(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    missing = []
    for i, line in enumerate(lines):
        if re.match(r"\s*- apiGroups:", line):
            before = next((s for s in reversed(lines[:i]) if s.strip()), "")
            if not before.strip().startswith("#"):
                missing.append(f"{path.name}:{i + 1}: {line.strip()}")
    return missing


@pytest.mark.parametrize("name", ["controller-rbac.yaml", "workflow-clusterrole.yaml"])
def test_every_rule_says_why(name: str) -> None:
    path = ARGO / name
    assert "apiGroups" in path.read_text()
    assert _uncommented_rules(path) == []


def test_an_uncommented_rule_is_found(tmp_path: Path) -> None:
    path = tmp_path / "role.yaml"
    path.write_text("rules:\n  # why\n  - apiGroups: ['']\n  - apiGroups: [apps]\n")
    assert _uncommented_rules(path) == ["role.yaml:4: - apiGroups: [apps]"]
