"""End to end on a kind cluster: the SEED.md objects back up a MySQL database into MinIO through
Argo Workflows, and restore it after a table was dropped.

Opt-in, because it needs Docker and the network (kind and kubectl releases, Argo's install
manifest, the MinIO, MySQL and Argo images)::

    pytest --kind tests/e2e

It builds the image from the ``Dockerfile`` and loads it into the cluster, installs Argo
Workflows, MinIO and MySQL (``tests/e2e/conftest.py`` pins every version), applies ``crds/``,
the workflow RBAC (``argo/workflow-clusterrole.yaml``, ``argo/namespace/``) and the SEED.md
objects with what ``backup-gen render`` makes of them, then runs the backup and the restore as
Argo would. The first test pays for all of that (several
minutes); the cluster is deleted at the end.

pytest-kind's options apply: ``--keep-cluster`` keeps the cluster for the next run (and for
looking around: ``.pytest-kind/<name>/kubeconfig``), ``--cluster-name``, ``--kind-image``,
``--kind-bin`` and ``--kind-kubectl-bin`` (binaries of your own instead of the pinned
downloads). ``E2E_MINIO_IMAGE`` replaces the MinIO image.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import re
import subprocess
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from pytest_kind import KindCluster

from tests.e2e.conftest import (
    BUCKET,
    NAMESPACE,
    TEST_TIMEOUT,
    MySQL,
    Seed,
    apply,
    diagnostics,
    output_parameters,
    render,
    submit,
    wait_for,
    workflow_from_cron,
    workflow_from_template,
)

pytestmark = [pytest.mark.kind, pytest.mark.timeout(TEST_TIMEOUT)]

#: Text a dump must carry through unchanged: quotes, backslashes, newlines, tabs, non-ASCII.
NOTES = ["plain", "O'Brien's \"quote\"", "back\\slash", "line one\nline two", "tab\there",
         "naïve ☃ 日本語", ""]  # fmt: skip
ROWS = 500
SNAPSHOT = "SELECT id, item, note, amount FROM orders ORDER BY id;"


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def table_sql() -> str:
    values = ",\n".join(
        f"({i}, 'item-{i}', {_literal(NOTES[i % len(NOTES)])}, {i * 1.25:.2f})"
        for i in range(1, ROWS + 1)
    )
    return (
        "DROP TABLE IF EXISTS orders;\n"
        "CREATE TABLE orders (id INT PRIMARY KEY, item VARCHAR(64) NOT NULL, "
        "note TEXT NOT NULL, amount DECIMAL(10, 2) NOT NULL) DEFAULT CHARSET = utf8mb4;\n"
        f"INSERT INTO orders VALUES\n{values};\n"
    )


@dataclass(frozen=True)
class Backup:
    """A finished backup run of the SEED.md schedule."""

    workflow: str
    outputs: dict[str, str]
    #: The table as it was backed up (SNAPSHOT's rows).
    rows: str


@pytest.fixture(scope="module")
def backup(cluster: KindCluster, seed: Seed, mysql: MySQL) -> Backup:
    """Fill the table, then run the schedule's backup as its CronWorkflow would."""
    mysql.sql(table_sql())
    rows = mysql.sql(SNAPSHOT)
    assert rows.count("\n") >= ROWS
    name = submit(cluster, workflow_from_cron(seed.argo("CronWorkflow")))
    workflow = wait_for(cluster, name)
    assert workflow["status"]["phase"] == "Succeeded", diagnostics(cluster, name)
    return Backup(name, output_parameters(workflow), rows)


def test_backup_stores_one_compressed_object_as_reported(backup: Backup, minio: Any) -> None:
    outputs = backup.outputs
    # SEED.md's path template: /backups/mysql-{{ now | date "2006.01.02-15:04:05" }}.sql
    assert re.fullmatch(r"backups/mysql-\d{4}\.\d\d\.\d\d-\d\d:\d\d:\d\d\.sql", outputs["path"])
    assert outputs["url"] == f"s3://{BUCKET}/{outputs['path']}"
    stored = minio.get_object(Bucket=BUCKET, Key=outputs["path"])["Body"].read()
    assert len(stored) == int(outputs["sizeInBytes"])
    assert outputs["size"]
    assert hashlib.sha256(stored).hexdigest() == outputs["sha256"]
    # SEED.md compresses with gzip in stream; the objects set no compression, so gzip it is.
    assert stored[:2] == b"\x1f\x8b"
    dump = gzip.decompress(stored).decode()
    assert "CREATE TABLE `orders`" in dump
    assert "INSERT INTO `orders`" in dump


def test_restore_brings_a_dropped_table_back(
    cluster: KindCluster, seed: Seed, backup: Backup, mysql: MySQL
) -> None:
    mysql.sql("DROP TABLE orders;")
    assert mysql.sql("SHOW TABLES LIKE 'orders';").strip() == ""
    template = seed.argo("WorkflowTemplate")["metadata"]["name"]
    assert template == "mysql-daily-restore"
    # argo submit --from workflowtemplate/mysql-daily-restore -p path=<the backup's path>
    name = submit(cluster, workflow_from_template(template, path=backup.outputs["path"]))
    workflow = wait_for(cluster, name)
    assert workflow["status"]["phase"] == "Succeeded", diagnostics(cluster, name)
    assert mysql.sql(SNAPSHOT) == backup.rows


def test_a_backup_command_that_fails_leaves_no_object(
    cluster: KindCluster, seed: Seed, image: str, minio: Any
) -> None:
    run_name = f"failing-{uuid.uuid4().hex[:8]}"
    spec = copy.deepcopy(seed.schedule["spec"]["template"]["spec"])
    del spec["restore"]
    spec["storage"]["path"] = "failing/{{ run }}.sql"
    # The whole dump is streamed, and only then does the command fail.
    spec["backup"]["args"] = [f"{spec['backup']['args'][0]}; exit 3"]
    run = {
        "apiVersion": "backup-operator.io/v1",
        "kind": "BackupRun",
        "metadata": {"name": run_name},
        "spec": spec,
    }
    apply(cluster, [run], "-n", NAMESPACE)
    (workflow_doc,) = render(image, [seed.storage, run])
    name = submit(cluster, workflow_doc)
    workflow = wait_for(cluster, name)
    assert workflow["status"]["phase"] == "Failed", diagnostics(cluster, name)
    prefix = f"failing/{run_name}"
    assert minio.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []) == []
    assert minio.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", []) == []


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
    cluster: KindCluster, seed: Seed, change: Any, message: str
) -> None:
    spec = copy.deepcopy(seed.schedule["spec"]["template"]["spec"])
    change(spec)
    run = {
        "apiVersion": "backup-operator.io/v1",
        "kind": "BackupRun",
        "metadata": {"name": "refused", "namespace": NAMESPACE},
        "spec": spec,
    }
    with pytest.raises(subprocess.CalledProcessError) as refused:
        cluster.kubectl(
            "apply", "--dry-run=server", "-f", "-",
            input=yaml.safe_dump(run), timeout=120, stderr=subprocess.PIPE,
        )  # fmt: skip
    assert message in refused.value.stderr
