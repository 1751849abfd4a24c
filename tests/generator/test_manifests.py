"""The install manifests in ``argo/``: the workflows' least-privilege RBAC and the SEED.md
examples (``tests/install`` renders and checks the whole install)."""

from __future__ import annotations

from generator.generate import validate_texts
from generator.render import DEFAULT_SERVICE_ACCOUNT
from tests.generator.conftest import GOLDEN, ROOT, load_yaml

ARGO = ROOT / "argo"


def test_rbac_is_namespaced_and_minimal() -> None:
    docs = {d["kind"]: d for d in load_yaml(ARGO / "namespace" / "workflow-rbac.yaml")}
    assert set(docs) == {"ServiceAccount", "RoleBinding"}
    (role,) = load_yaml(ARGO / "workflow-clusterrole.yaml")
    assert docs["ServiceAccount"]["metadata"]["name"] == DEFAULT_SERVICE_ACCOUNT
    rules = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert rules == {
        ("", "pods", "get"),
        ("", "pods/exec", "create"),
        ("", "pods/exec", "get"),
        ("argoproj.io", "workflowtaskresults", "create"),
        ("argoproj.io", "workflowtaskresults", "patch"),
    }
    # A ClusterRole bound by a RoleBinding: its permissions hold in that namespace only.
    binding = docs["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": DEFAULT_SERVICE_ACCOUNT}]


def test_examples_are_the_seed_objects_and_valid() -> None:
    examples = ARGO / "examples" / "mysql.yaml"
    assert load_yaml(examples) == load_yaml(GOLDEN / "seed.in.yaml")
    kinds = [o.kind for o in validate_texts([(examples.name, examples.read_text())])]
    assert kinds == ["BackupStorage", "BackupSchedule"]
