"""Helpers of the generator tests: the golden files, the Argo validator, CRD schema checks.

``UPDATE_GOLDEN=1`` rewrites the golden ``*.argo.yaml`` files (and ``crds/``) instead of
comparing; without it any difference fails. ``../shared/tools/validate-argo`` is looked up next
to the checkout (override with ``VALIDATE_ARGO``); it is required under ``CI=true``.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml

from generator.crds import crds
from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN", "") not in ("", "0")
VALIDATE_ARGO = Path(
    os.environ.get("VALIDATE_ARGO", ROOT.parent / "shared" / "tools" / "validate-argo")
)


def run_validate_argo(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    """Run the Argo validator on files; fails (CI) or skips when the tool is absent."""
    if not VALIDATE_ARGO.is_file():
        missing(f"the Argo validator at {VALIDATE_ARGO}")
    return subprocess.run(
        [sys.executable, str(VALIDATE_ARGO), *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@functools.cache
def _crds() -> list[dict[str, Any]]:
    return crds()


def schema_of(kind: str) -> dict[str, Any]:
    for crd in _crds():
        if crd["spec"]["names"]["kind"] == kind:
            return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    raise KeyError(kind)


_CEL = celpy.Environment()


@functools.cache
def _program(rule: str) -> Any:
    return _CEL.program(_CEL.compile(rule))


def _cel_problems(schema: dict[str, Any], data: Any, path: str) -> Iterator[str]:
    for rule in schema.get("x-kubernetes-validations", ()):
        if not _program(rule["rule"]).evaluate({"self": celpy.json_to_cel(data)}):
            yield f"{path}: {rule['message']}"
    if isinstance(data, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in data.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from _cel_problems(sub, value, f"{path}.{key}" if path else key)
    elif isinstance(data, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(data):
            yield from _cel_problems(schema["items"], value, f"{path}[{i}]")


def _unknown_fields(schema: dict[str, Any], data: Any, path: str) -> Iterator[str]:
    """What strict field validation (kubectl's default) refuses instead of pruning."""
    if isinstance(data, dict) and not schema.get("x-kubernetes-preserve-unknown-fields"):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in data.items():
            where = f"{path}.{key}" if path else key
            if props is not None and key in props:
                yield from _unknown_fields(props[key], value, where)
            elif isinstance(extra, dict):
                yield from _unknown_fields(extra, value, where)
            elif path != "metadata":
                yield f"{where}: unknown field"
    elif isinstance(data, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(data):
            yield from _unknown_fields(schema["items"], value, f"{path}[{i}]")


def crd_problems(doc: dict[str, Any]) -> list[str]:
    """What the API server would refuse: the CRD's OpenAPI schema (with strict field
    validation), then its CEL rules."""
    schema = schema_of(doc["kind"])
    validator = jsonschema.Draft7Validator(schema)
    problems = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]
    problems.extend(_unknown_fields(schema, doc, ""))
    if problems:  # the API server evaluates CEL only on objects that match the schema
        return problems
    return list(_cel_problems(schema, doc, ""))


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="session")
def golden_inputs() -> list[Path]:
    return sorted(GOLDEN.glob("*.in.yaml"))
