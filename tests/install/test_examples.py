"""``argo/examples/``: the design document's MySQL objects, a PostgreSQL schedule and run, and
a plain file-tree tar backup. Each file stands alone: it validates (the models, and the CRDs'
schemas as the API server applies them), and ``backup-gen render`` turns it into Argo objects
that pass ``validate-argo``, run as the per-namespace ServiceAccount and use the release image
unless ``--image`` says otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from generator.cli import main
from generator.render import DEFAULT_IMAGE
from tests.generator.conftest import GOLDEN, crd_problems, run_validate_argo
from tests.install.conftest import EXAMPLES, WORKFLOW_RBAC, load_yaml

FILES = sorted(EXAMPLES.glob("*.yaml"))
#: The streamer's container in every rendered Pod (the user's containers are sidecars).
MAIN = "main"


def _render(path: Path, *options: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["render", "-f", str(path), "-n", "apps", *options])
    assert result.exit_code == 0, result.output
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]["workflowSpec"] if obj["kind"] == "CronWorkflow" else obj["spec"]
    return [spec]


def _streamer_images(objects: list[dict[str, Any]]) -> set[str]:
    return {
        template["container"]["image"]
        for obj in objects
        for spec in _pod_specs(obj)
        for template in spec["templates"]
        if "container" in template
    }


def test_the_examples_are_these() -> None:
    assert [p.name for p in FILES] == ["files.yaml", "mysql.yaml", "postgresql.yaml"]


def test_mysql_is_the_design_documents() -> None:
    assert load_yaml(EXAMPLES / "mysql.yaml") == load_yaml(GOLDEN / "seed.in.yaml")


def test_every_example_uses_the_same_storage() -> None:
    storages = [[o for o in load_yaml(path) if o["kind"] == "BackupStorage"] for path in FILES]
    assert all(s == storages[0] for s in storages), "the examples' BackupStorages differ"
    assert len(storages[0]) == 1


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_validates(path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "-f", str(path)])
    assert result.exit_code == 0, result.output
    problems = [p for doc in load_yaml(path) for p in crd_problems(doc)]
    assert problems == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_renders_into_valid_argo_objects(path: Path, tmp_path: Path) -> None:
    objects = _render(path)
    rendered = tmp_path / f"{path.stem}.argo.yaml"
    rendered.write_text(yaml.safe_dump_all(objects))
    done = run_validate_argo([rendered])
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(objects)} checked, 0 failed" in done.stdout
    account = load_yaml(WORKFLOW_RBAC)[0]["metadata"]["name"]
    for obj in objects:
        for spec in _pod_specs(obj):
            assert spec["serviceAccountName"] == account, obj["metadata"]["name"]
    assert _streamer_images(objects) == {DEFAULT_IMAGE}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_image_overrides_the_release_image(path: Path) -> None:
    objects = _render(path, "--image", "registry.local/backup-operator:dev")
    assert _streamer_images(objects) == {"registry.local/backup-operator:dev"}


def test_each_backs_up_with_its_own_tools() -> None:
    def commands(path: Path) -> set[str]:
        return {
            spec[action]["command"][0]
            for obj in load_yaml(path)
            for spec in [obj["spec"].get("template", {}).get("spec", obj["spec"])]
            for action in ("backup", "restore")
            if action in spec
        }

    assert commands(EXAMPLES / "mysql.yaml") == {"/bin/sh"}
    assert commands(EXAMPLES / "postgresql.yaml") == {"pg_dump", "psql"}
    assert commands(EXAMPLES / "files.yaml") == {"tar"}
