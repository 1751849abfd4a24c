"""checkov finds nothing in ``argo/`` (the manifests as written, and as kustomize renders them)
nor in the ``Dockerfile``: every check passes, or is skipped next to its resource with the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.install.conftest import ARGO, BIN, DOCKERFILE, checkov, run

Report = dict[str, dict[str, Any]]


def _scan(*target: str, frameworks: tuple[str, ...]) -> Report:
    """checkov's JSON report per framework. Offline (--skip-download); kustomize through the
    test extra's kubectl, first on the PATH."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    argv = [checkov(), *target, "--framework", *frameworks, "--skip-download", "-o", "json"]
    done = run(argv, env=env)
    assert done.returncode in (0, 1), done.stderr[-4000:]  # 1: a failed check
    data = json.loads(done.stdout)
    reports = data if isinstance(data, list) else [data]
    return {r["check_type"]: r for r in reports}


def _failures(report: dict[str, Any]) -> list[str]:
    return [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]


@pytest.fixture(scope="module")
def reports() -> Report:
    return {
        **_scan("-d", str(ARGO), frameworks=("kubernetes", "kustomize")),
        **_scan("-f", str(DOCKERFILE), frameworks=("dockerfile",)),
    }


@pytest.mark.parametrize("framework", ["kubernetes", "kustomize", "dockerfile"])
def test_no_check_fails(reports: Report, framework: str) -> None:
    report = reports.get(framework)
    assert report is not None, f"checkov ran no {framework} scan: {sorted(reports)}"
    summary = report["summary"]
    assert summary["resource_count"] > 0, summary
    assert summary["passed"] > 0, summary
    assert summary["parsing_errors"] == 0, summary
    assert _failures(report) == []


def test_every_skip_gives_its_reason(reports: Report) -> None:
    skips = [c for r in reports.values() for c in r["results"]["skipped_checks"]]
    assert skips, "the known skips (image digest, pull policy, token) are gone: update this test"
    for skip in skips:
        reason = skip["check_result"].get("suppress_comment") or ""
        assert len(reason.split()) >= 8, f"{skip['check_id']} on {skip['resource']}: {reason!r}"


def test_the_kustomize_scan_saw_the_rendered_install(reports: Report) -> None:
    resources = {
        c["resource"].rpartition(":")[2] for c in reports["kustomize"]["results"]["passed_checks"]
    }
    assert "Deployment.backup-operator.backup-operator" in resources
    assert "ClusterRole.default.backup-operator" in resources


def test_a_careless_manifest_and_dockerfile_fail(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: careless, namespace: apps}\n"
        "spec:\n  containers:\n  - name: c\n    image: busybox\n"
        "    securityContext: {privileged: true}\n"
    )
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo hi\n")
    reports = _scan("-d", str(tmp_path), frameworks=("kubernetes", "dockerfile"))
    failed = {c["check_id"] for r in reports.values() for c in r["results"]["failed_checks"]}
    # privileged, no probes, no resources, untagged image; no USER, no HEALTHCHECK
    assert {"CKV_K8S_16", "CKV_K8S_8", "CKV_K8S_11", "CKV_K8S_14"} <= failed, failed
    assert {"CKV_DOCKER_3", "CKV_DOCKER_2"} <= failed, failed
