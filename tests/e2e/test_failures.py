"""What fails on kind fails loudly: a backup command that exits non-zero fails its run and
leaves nothing in MinIO, and the API server refuses what ``backup-gen validate`` refuses.

Opt-in with the rest of the kind suite (``make e2e``); these need the install and the design
document's objects of the walkthrough (conftest.py), not its runs.
"""

from __future__ import annotations

import copy
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_kind import KindCluster

from tests.e2e import walkthrough as w
from tests.e2e.cluster import (
    TEST_TIMEOUT,
    absent,
    condition,
    diagnostics,
    finished,
    kubectl,
    phase,
    stored_keys,
)

pytestmark = [pytest.mark.kind, pytest.mark.timeout(TEST_TIMEOUT)]

EXAMPLES = Path(__file__).resolve().parents[2] / "argo" / "examples" / "mysql.yaml"


def _seed_run_spec() -> dict[str, Any]:
    """The run template of the design document's schedule, as argo/examples/ has it."""
    (schedule,) = (
        d for d in yaml.safe_load_all(EXAMPLES.read_text()) if d["kind"] == "BackupSchedule"
    )
    return copy.deepcopy(schedule["spec"]["template"]["spec"])


def _run(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "backup-operator.io/v1",
        "kind": "BackupRun",
        "metadata": {"name": name, "namespace": w.NAMESPACE},
        "spec": spec,
    }


def test_a_backup_command_that_fails_fails_its_run_and_stores_nothing(
    cluster: KindCluster, examples: None, minio: Any
) -> None:
    name = f"failing-{uuid.uuid4().hex[:8]}"
    spec = _seed_run_spec()
    del spec["restore"]
    spec["storage"]["path"] = "failing/{{ run }}.sql"
    # The whole dump is streamed, and only then does the command fail.
    spec["backup"]["args"] = [f"{spec['backup']['args'][0]}; exit 3"]
    kubectl(cluster, "apply", "-f", "-", input=yaml.safe_dump(_run(name, spec)))
    run = finished(cluster, name)
    assert phase(run) == "Failed", diagnostics(cluster, name)
    assert condition(run, "Failed")["status"] == "True"
    assert condition(run, "Restorable")["status"] == "False"
    prefix = f"failing/{name}"
    assert stored_keys(minio, prefix) == set()
    assert minio.list_multipart_uploads(Bucket=w.BUCKET, Prefix=prefix).get("Uploads", []) == []
    # retainPolicy: Delete with nothing stored: the finalizer lets the run go at once.
    kubectl(cluster, "delete", "backuprun", name, "-n", w.NAMESPACE, "--timeout=120s")
    assert absent(cluster, "backuprun", name, "-n", w.NAMESPACE)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            lambda spec: spec.update(compression={"algorithm": "none", "level": 6}),
            "level applies to gzip only",
            id="level-without-compression",
        ),
        pytest.param(
            lambda spec: spec["backup"].update(container="mysql2"),
            "backup.container must be one of template.spec.containers",
            id="unknown-container",
        ),
    ],
)
def test_the_api_server_refuses_what_backup_gen_refuses(
    cluster: KindCluster, examples: None, change: Any, message: str
) -> None:
    spec = _seed_run_spec()
    change(spec)
    with pytest.raises(subprocess.CalledProcessError) as refused:
        cluster.kubectl(
            "apply", "--dry-run=server", "-f", "-",
            input=yaml.safe_dump(_run("refused", spec)), timeout=120, stderr=subprocess.PIPE,
        )  # fmt: skip
    assert message in refused.value.stderr
