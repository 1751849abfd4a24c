"""Golden files: each ``tests/golden/<case>.in.yaml`` renders to its committed ``<case>.argo.yaml``.

The rendered objects must also pass the Argo v4 schemas (``validate-argo``), survive a round
trip through hera's models without losing a key, render byte-identically twice, and never
carry a secret value.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hera.workflows import models as m
from pydantic import BaseModel

from generator.generate import render_texts
from generator.render import DRILL_TEMPLATE, RenderOptions
from tests.generator.conftest import GOLDEN, ROOT, UPDATE, load_yaml, run_validate_argo

CASES = sorted(p.name.removesuffix(".in.yaml") for p in GOLDEN.glob("*.in.yaml"))
REQUIRED_CASES = {
    "seed",
    "compression-only",
    "encryption-only",
    "both-with-restore",
    "backup-only",
    "restore-only",
    "suspended-timezone",
    "pod-template",
    "verify-integrity",
    "verify-restore",
}
HERA: dict[str, type[BaseModel]] = {
    "Workflow": m.Workflow,
    "CronWorkflow": m.CronWorkflow,
    "WorkflowTemplate": m.WorkflowTemplate,
}
SEED = ROOT.parent / "shared" / "SEED.md"


def render(case: str) -> str:
    source = GOLDEN / f"{case}.in.yaml"
    return render_texts([(source.name, source.read_text())], RenderOptions())


def test_every_required_case_exists() -> None:
    assert set(CASES) >= REQUIRED_CASES


@pytest.mark.parametrize("case", CASES)
def test_renders_to_golden(case: str) -> None:
    expected = GOLDEN / f"{case}.argo.yaml"
    rendered = render(case)
    if UPDATE:
        expected.write_text(rendered)
    assert expected.is_file(), f"no golden file; run UPDATE_GOLDEN=1 pytest {__file__}"
    assert rendered == expected.read_text(), f"{expected.name} is stale (UPDATE_GOLDEN=1)"


@pytest.mark.parametrize("case", CASES)
def test_rendering_is_deterministic(case: str) -> None:
    assert render(case) == render(case)


def test_golden_and_install_manifests_pass_validate_argo() -> None:
    files = sorted(GOLDEN.glob("*.argo.yaml")) + sorted((ROOT / "argo").glob("*.yaml"))
    done = run_validate_argo(files)
    assert done.returncode == 0, done.stdout + done.stderr
    checked = re.search(r"(\d+) checked, 0 failed", done.stdout)
    assert checked is not None, done.stdout
    assert int(checked.group(1)) >= len(CASES), done.stdout


def _argo_documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}#{i}", doc)
        for path in sorted(GOLDEN.glob("*.argo.yaml"))
        for i, doc in enumerate(load_yaml(path))
    ]


@pytest.mark.parametrize(("name", "doc"), _argo_documents(), ids=lambda v: str(v)[:60])
def test_round_trips_through_hera_models(name: str, doc: dict[str, Any]) -> None:
    model = HERA[doc["kind"]].model_validate(doc)
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == doc


def _walk(value: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(value, dict):
        found.append(value)
        for item in value.values():
            found.extend(_walk(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_walk(item))
    return found


@pytest.mark.parametrize(("name", "doc"), _argo_documents(), ids=lambda v: str(v)[:60])
def test_streamer_credentials_are_secret_references(name: str, doc: dict[str, Any]) -> None:
    for node in _walk(doc):
        if node.get("name", "").startswith("AWS_") or node.get("name") == "AGE_IDENTITY":
            assert "value" not in node, f"{name}: {node['name']} has a literal value"
            assert "secretKeyRef" in node["valueFrom"]


def test_age_identity_is_mounted_only_into_restores_and_drills() -> None:
    mounted = set()
    for name, doc in _argo_documents():
        for template in _walk(doc):
            if "container" not in template or "name" not in template:
                continue
            mounts = template["container"].get("volumeMounts", [])
            if any(v["name"] == "backup-operator-age-identity" for v in mounts):
                assert template["name"] in ("restore", DRILL_TEMPLATE), name
                mounted.add(template["name"])
    assert mounted == {"restore", DRILL_TEMPLATE}


def _seed_objects(text: str) -> list[str]:
    starts = [i.start() for i in re.finditer(r"^apiVersion: backup-operator.io/v1$", text, re.M)]
    blocks = []
    for start in starts:
        block = text[start:]
        block = block.split("\n\n", 1)[0].split("```", 1)[0]
        blocks.append(block)
    return blocks


def test_seed_objects_are_verbatim_in_the_seed_case() -> None:
    if not SEED.is_file():
        pytest.skip(f"missing: {SEED}")
    golden = (GOLDEN / "seed.in.yaml").read_text()
    blocks = _seed_objects(SEED.read_text())
    assert len(blocks) == 2
    for block in blocks:
        assert block.strip() in golden
