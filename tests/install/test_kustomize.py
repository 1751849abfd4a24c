"""``kubectl apply -k argo/`` installs exactly the CRDs, the namespace, the controller's identity
and RBAC, the workflow ClusterRole and the controller: rendered by the real ``kubectl kustomize``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from generator.crds import crds
from generator.render import DEFAULT_IMAGE
from tests.install.conftest import ARGO, CRDS, find, kubectl, kustomize, load_yaml, run

NAMESPACE = "backup-operator"
PART_OF = "app.kubernetes.io/part-of"
#: Everything the install applies: (kind, namespace, name).
INSTALL = {
    ("CustomResourceDefinition", None, "backupruns.backup-operator.io"),
    ("CustomResourceDefinition", None, "backupschedules.backup-operator.io"),
    ("CustomResourceDefinition", None, "backupstorages.backup-operator.io"),
    ("Namespace", None, NAMESPACE),
    ("ServiceAccount", NAMESPACE, "backup-operator"),
    ("ClusterRole", None, "backup-operator"),
    ("ClusterRoleBinding", None, "backup-operator"),
    ("ClusterRole", None, "backup-operator-workflow"),
    ("NetworkPolicy", NAMESPACE, "backup-operator"),
    ("Deployment", NAMESPACE, "backup-operator"),
    ("Service", NAMESPACE, "backup-operator-metrics"),
}


def _key(obj: dict[str, Any]) -> tuple[str, str | None, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace"), meta["name"]


def _copy_tree(tmp_path: Path) -> Path:
    """argo/ and crds/ side by side under ``tmp_path`` (the kustomization refers to ../crds)."""
    shutil.copytree(ARGO, tmp_path / "argo")
    shutil.copytree(CRDS, tmp_path / "crds")
    return tmp_path / "argo"


def test_the_install_is_exactly_these_objects(installed: list[dict[str, Any]]) -> None:
    keys = [_key(o) for o in installed]
    assert len(keys) == len(set(keys)), "an object is rendered twice"
    assert set(keys) == INSTALL


def test_every_object_says_it_is_part_of_backup_operator(installed: list[dict[str, Any]]) -> None:
    unlabelled = [
        _key(o) for o in installed if o["metadata"].get("labels", {}).get(PART_OF) is None
    ]
    assert unlabelled == []


def test_the_crds_are_the_generated_ones(installed: list[dict[str, Any]]) -> None:
    rendered = {
        o["metadata"]["name"]: o for o in installed if o["kind"] == "CustomResourceDefinition"
    }
    generated = {crd["metadata"]["name"]: crd for crd in crds()}
    assert set(rendered) == set(generated)
    for name, crd in rendered.items():
        labels = crd["metadata"].pop("labels")
        assert labels == {PART_OF: "backup-operator"}, name
        assert crd == generated[name], f"{name}: the install's CRD differs from backup-gen crds"


def test_the_crds_kustomization_lists_every_crd_file() -> None:
    listed = load_yaml(CRDS / "Kustomization")[0]["resources"]
    assert sorted(listed) == sorted(p.name for p in CRDS.glob("*.yaml"))


def test_the_workflow_image_follows_an_image_edit(tmp_path: Path) -> None:
    argo = _copy_tree(tmp_path)
    with (argo / "kustomization.yaml").open("a") as f:
        f.write(
            "images:\n"
            "  - name: ghcr.io/backup-operator/backup-operator\n"
            "    newName: registry.local/backup-operator\n"
            "    newTag: dev\n"
        )
    container = find(kustomize(argo), "Deployment", "backup-operator")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["image"] == "registry.local/backup-operator:dev"
    assert "--image=registry.local/backup-operator:dev" in container["args"]
    assert DEFAULT_IMAGE not in yaml.safe_dump(container)


def test_a_missing_file_fails_the_render(tmp_path: Path) -> None:
    argo = _copy_tree(tmp_path)
    (tmp_path / "crds" / "backupruns.backup-operator.io.yaml").unlink()
    done = run([kubectl(), "kustomize", str(argo)])
    assert done.returncode != 0
    assert "backupruns.backup-operator.io.yaml" in done.stderr
