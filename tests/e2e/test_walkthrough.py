"""The README's walkthrough on kind, command by command, after its install (conftest.py).

Opt-in, because it needs Docker and the network (kind, kubectl and argo releases, Argo's install
manifest, the MinIO and MySQL images)::

    make e2e        # pytest --kind tests/e2e

A trigger backs up the design document's MySQL into MinIO through the controller and Argo;
rows deleted from the table come back with the restore annotation, and once more with
``argo submit --from workflowtemplate/…``; the controller's Pod is deleted while a backup is
held mid-run, and the run is still recorded once; three more triggers rotate the history down
to the pinned run and the two newest, deleting the others' objects from MinIO; deleting the
pinned run (``retainPolicy: Delete``) deletes its object. Every command the README shows runs
here as written (:mod:`tests.e2e.walkthrough` says which do not, and why); the checks around
them read the cluster, MinIO and MySQL directly.

The tests run in the README's order and build on each other (one cluster, one schedule): run
the module whole. The first pays for the cluster, the image and every install (several
minutes); the cluster is deleted at the end unless ``--keep-cluster`` (its kubeconfig is
``.pytest-kind/<name>/kubeconfig``). pytest-kind's ``--cluster-name``, ``--kind-image``,
``--kind-bin`` and ``--kind-kubectl-bin`` apply.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from pytest_kind import KindCluster
from urllib3.exceptions import InsecureRequestWarning

from tests.e2e import walkthrough as w
from tests.e2e.cluster import (
    FINAL,
    PROMETHEUS_CRDS,
    TEST_TIMEOUT,
    absent,
    apply_urls,
    condition,
    diagnostics,
    events,
    fail,
    finished,
    forward_target,
    get_json,
    kubectl,
    new_run,
    phase,
    port_forward,
    runs,
    stored_keys,
    wait_until,
)
from tests.e2e.mysql import ROWS, SNAPSHOT, MySQL, table_sql
from tests.e2e.shell import Shell

pytestmark = [pytest.mark.kind, pytest.mark.timeout(TEST_TIMEOUT)]

README = Path(__file__).resolve().parents[2] / "README.md"
CONTROLLER_NAMESPACE = "backup-operator"
CONTROLLER_PODS = "app.kubernetes.io/name=backup-operator"
#: The design document's path template: /backups/mysql-{{ now | date "2006.01.02-15:04:05" }}.sql
SEED_KEY = re.compile(r"backups/mysql-\d{4}\.\d\d\.\d\d-\d\d:\d\d:\d\d\.sql")
ANNOTATION_RESTORE = "backup-operator.io/restore"


@dataclass(frozen=True)
class FirstRun:
    """The walkthrough's first backup, ``$RUN``."""

    name: str
    #: The table as it was backed up (SNAPSHOT's rows).
    rows: str
    run: dict[str, Any]

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.run["status"])


def trigger(cluster: KindCluster, shell: Shell) -> str:
    """The README's trigger, and the name of the run it made once it has succeeded."""
    before = set(runs(cluster, w.SCHEDULE))
    shell.run(w.TRIGGER)
    name = new_run(cluster, before)
    run = finished(cluster, name)
    if phase(run) != "Succeeded":
        fail(f"BackupRun {name} is {phase(run)}\n{diagnostics(cluster, name)}")
    return name


@pytest.fixture(scope="module")
def first_run(cluster: KindCluster, shell: Shell, examples: None, mysql: MySQL) -> FirstRun:
    """README "The first backup" and "Watching it": a trigger backs up the filled table."""
    mysql.sql(table_sql())
    rows = mysql.sql(SNAPSHOT)
    assert rows.count("\n") >= ROWS
    before = set(runs(cluster, w.SCHEDULE))
    shell.run(w.TRIGGER)
    name = new_run(cluster, before)  # what `kubectl get backupruns -w` shows a reader
    assert shell.run(w.FIND_RUN) == name, "$RUN is not the trigger's run"
    run = finished(cluster, name)
    assert phase(run) == "Succeeded", diagnostics(cluster, name)
    shell.run(w.WAIT_RUN)
    return FirstRun(name, rows, run)


def test_the_controller_and_its_workflows_run_the_built_image(
    cluster: KindCluster, operator: None
) -> None:
    deployment = get_json(cluster, "deployment/backup-operator", "-n", CONTROLLER_NAMESPACE)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == w.IMAGE
    assert f"--image={w.IMAGE}" in container["args"]


def test_the_schedule_becomes_argo_objects_and_the_storage_is_ready(
    cluster: KindCluster, examples: None
) -> None:
    storage = get_json(cluster, f"backupstorage/{w.STORAGE}")
    assert condition(storage, "Ready")["status"] == "True"
    cron = get_json(cluster, f"cronworkflow/{w.SCHEDULE}", "-n", w.NAMESPACE)
    template = get_json(cluster, f"workflowtemplate/{w.SCHEDULE}-restore", "-n", w.NAMESPACE)
    for owned in (cron, template):
        (owner,) = owned["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("BackupSchedule", w.SCHEDULE)
    # The storage's credentials, copied where the runs read them.
    copied = get_json(cluster, f"secret/{w.STORAGE}-backup-credentials", "-n", w.NAMESPACE)
    original = get_json(cluster, "secret/minio-credentials", "-n", w.MINIO_NAMESPACE)
    assert copied["data"] == original["data"]


def test_a_trigger_backs_up_the_table_as_reported(
    cluster: KindCluster, shell: Shell, first_run: FirstRun, minio: Any
) -> None:
    status = first_run.status
    assert SEED_KEY.fullmatch(status["path"]), status["path"]
    assert status["url"] == f"s3://{w.BUCKET}/{status['path']}"
    stored = minio.get_object(Bucket=w.BUCKET, Key=status["path"])["Body"].read()
    assert len(stored) == int(status["sizeInBytes"])
    assert hashlib.sha256(stored).hexdigest() == status["sha256"]
    # The design document compresses with gzip in stream and sets no encryption.
    assert stored[:2] == b"\x1f\x8b"
    dump = gzip.decompress(stored).decode()
    assert "CREATE TABLE `orders`" in dump
    assert "INSERT INTO `orders`" in dump
    for type_, wanted in [("Successful", "True"), ("Restorable", "True"),
                          ("Compressed", "True"), ("Encrypted", "False")]:  # fmt: skip
        assert condition(first_run.run, type_).get("status") == wanted, type_
    # The trigger is handled once: cleared, and its Workflow runs the built image.
    schedule = get_json(cluster, f"backupschedule/{w.SCHEDULE}", "-n", w.NAMESPACE)
    assert "backup-operator.io/trigger" not in (schedule["metadata"].get("annotations") or {})
    workflow = get_json(cluster, f"workflow/{first_run.name}", "-n", w.NAMESPACE)
    images = {t["container"]["image"] for t in workflow["spec"]["templates"] if "container" in t}
    assert images == {w.IMAGE}
    assert status["sha256"] in shell.run(w.DESCRIBE_RUN)
    assert "Succeeded" in shell.run(w.ARGO_GET)


def test_the_argo_ui_shows_the_runs_progress_and_outputs(
    cluster: KindCluster, shell: Shell, first_run: FirstRun
) -> None:
    token = shell.run(w.UI_TOKEN).strip()
    namespace, target, port = forward_target(w.UI_FORWARD)
    url = f"/api/v1/workflows/{w.NAMESPACE}/{first_run.name}"
    with (
        port_forward(cluster, namespace, target, port) as local,
        requests.Session() as http,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", InsecureRequestWarning)  # its self-signed certificate
        response = http.get(
            f"https://127.0.0.1:{local}{url}",
            headers={"Authorization": f"Bearer {token}"},
            verify=False,
            timeout=60,
        )
    assert response.status_code == 200, response.text
    workflow = response.json()
    assert workflow["status"]["phase"] == "Succeeded"
    assert re.fullmatch(r"(\d+)/\1", workflow["status"].get("progress", "")), workflow["status"]
    outputs = {
        p["name"]: p.get("value")
        for node in workflow["status"]["nodes"].values()
        for p in (node.get("outputs") or {}).get("parameters") or []
    }
    for name in ("path", "sizeInBytes", "sha256"):
        assert str(outputs[name]) == str(first_run.status[name]), name
    assert workflow["metadata"]["annotations"].get("workflows.argoproj.io/title")


def test_a_restore_annotation_brings_deleted_rows_back(
    cluster: KindCluster, shell: Shell, first_run: FirstRun, mysql: MySQL
) -> None:
    mysql.sql("DELETE FROM orders WHERE id > 10;")
    assert mysql.sql(SNAPSHOT) != first_run.rows
    shell.run(w.RESTORE)

    def handled() -> dict[str, Any] | None:
        run = runs(cluster)[first_run.name]
        pending = ANNOTATION_RESTORE in (run["metadata"].get("annotations") or {})
        done = condition(run, "Restored").get("status") in ("True", "False")
        return run if done and not pending else None

    run = wait_until(
        handled, "the restore request", diagnose=lambda: diagnostics(cluster, first_run.name)
    )
    assert condition(run, "Restored")["status"] == "True", diagnostics(cluster, first_run.name)
    shell.run(w.WAIT_RESTORE)
    assert shell.run(w.RESTORED_AT).strip() == run["status"]["restoredAt"]
    assert mysql.sql(SNAPSHOT) == first_run.rows
    label = f"backup-operator.io/restore-of={first_run.name}"
    restores = get_json(cluster, "workflows", "-n", w.NAMESPACE, "-l", label)["items"]
    assert [phase(wf) for wf in restores] == ["Succeeded"]


def test_argo_submit_restores_the_same_key(
    cluster: KindCluster, shell: Shell, first_run: FirstRun, mysql: MySQL
) -> None:
    mysql.sql("DROP TABLE orders;")
    shell.run(w.SUBMIT_RESTORE)
    assert mysql.sql(SNAPSHOT) == first_run.rows
    label = f"workflows.argoproj.io/workflow-template={w.SCHEDULE}-restore"
    submitted = get_json(cluster, "workflows", "-n", w.NAMESPACE, "-l", label)["items"]
    assert [phase(wf) for wf in submitted] == ["Succeeded"]


def _controller_pods(cluster: KindCluster) -> list[dict[str, Any]]:
    found = get_json(cluster, "pods", "-n", CONTROLLER_NAMESPACE, "-l", CONTROLLER_PODS)
    return list(found["items"])


def _ready_pod(cluster: KindCluster, other_than: str) -> str | None:
    for pod in _controller_pods(cluster):
        name = pod["metadata"]["name"]
        going = name == other_than or pod["metadata"].get("deletionTimestamp")
        if not going and condition(pod, "Ready").get("status") == "True":
            return str(name)
    return None


def _cron_workflows(cluster: KindCluster) -> set[str]:
    label = f"workflows.argoproj.io/cron-workflow={w.SCHEDULE}"
    found = get_json(cluster, "workflows", "-n", w.NAMESPACE, "-l", label)
    return {wf["metadata"]["name"] for wf in found["items"]}


def _records(run: dict[str, Any]) -> str | None:
    """The Workflow a catalogued run records."""
    return (run["metadata"].get("annotations") or {}).get("backup-operator.io/records-workflow")


def test_a_controller_restarted_mid_run_records_the_run_once(
    cluster: KindCluster, shell: Shell, first_run: FirstRun, mysql: MySQL, minio: Any
) -> None:
    workflows_before = _cron_workflows(cluster)
    before = set(runs(cluster, w.SCHEDULE))
    with mysql.table_locked():
        shell.run(w.TRIGGER)
        name = new_run(cluster, before)
        # mysqldump waits for the lock: the Workflow is running, its stream is open.
        wait_until(
            lambda: mysql.locks("PENDING") > 0,
            "the backup's mysqldump to wait for the table lock",
            diagnose=lambda: diagnostics(cluster, name),
        )
        (old,) = (p["metadata"]["name"] for p in _controller_pods(cluster))
        kubectl(cluster, "delete", "pod", "-n", CONTROLLER_NAMESPACE, old, "--timeout=120s")
        wait_until(
            lambda: _ready_pod(cluster, other_than=old),
            "a new controller Pod to be Ready",
            diagnose=lambda: diagnostics(cluster, name),
        )
        assert phase(runs(cluster)[name]) not in FINAL, "the run ended before the restart"
    run = finished(cluster, name)
    assert phase(run) == "Succeeded", diagnostics(cluster, name)
    records = [n for n, r in runs(cluster).items() if _records(r) == name]
    assert records == [name]
    assert _cron_workflows(cluster) - workflows_before == {name}
    assert len(events(cluster, name, "Succeeded")) == 1
    assert len(events(cluster, name, "Started")) <= 1  # missing after a restart, never doubled
    triggered = [e for e in events(cluster, w.SCHEDULE, "Triggered") if name in e["message"]]
    assert len(triggered) == 1
    assert stored_keys(minio, run["status"]["path"]) == {run["status"]["path"]}


def _scrape_target() -> tuple[str, str, int]:
    """The namespace, Service and port of the README's scrape config."""
    ((heading, block),) = w.readme_blocks(w.walkthrough_text(README.read_text()), "yaml")
    assert heading == "Monitoring"
    (job,) = yaml.safe_load(block)["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.rsplit(":", 1)
    service, namespace = host.split(".")[:2]
    return namespace, f"service/{service}", int(port)


def _metrics(cluster: KindCluster, namespace: str, target: str, port: int) -> str:
    with port_forward(cluster, namespace, target, port) as local, requests.Session() as http:
        response = http.get(f"http://127.0.0.1:{local}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def _sample(text: str, metric: str, **labels: str) -> str | None:
    """The value of the first sample of ``metric`` that has these labels (and maybe others)."""
    for line in text.splitlines():
        if line.startswith(metric + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return line.rsplit(" ", 1)[1]
    return None


def test_the_metrics_and_the_monitoring_objects(
    cluster: KindCluster, shell: Shell, first_run: FirstRun
) -> None:
    schedule = {"namespace": w.NAMESPACE, "schedule": w.SCHEDULE}
    # The controller's Pod (the README's port-forward), and the Service its scrape config names.
    for where in (forward_target(w.METRICS_FORWARD), _scrape_target()):
        text = _metrics(cluster, *where)
        last = _sample(text, "backup_operator_schedule_last_success_timestamp_seconds", **schedule)
        assert last is not None, where
        assert float(last) > 0, where
        assert _sample(text, "backup_operator_storage_ready", storage=w.STORAGE) == "1.0", where
    apply_urls(cluster, PROMETHEUS_CRDS)
    kubectl(
        cluster, "wait", "--for=condition=Established", "--timeout=120s",
        "crd/prometheusrules.monitoring.coreos.com", "crd/servicemonitors.monitoring.coreos.com",
    )  # fmt: skip
    shell.run(w.APPLY_MONITORING)
    rule = get_json(cluster, "prometheusrule/backup-operator", "-n", CONTROLLER_NAMESPACE)
    assert rule["spec"]["groups"]


def test_rotation_keeps_the_pinned_run_and_the_newest(
    cluster: KindCluster, shell: Shell, first_run: FirstRun, minio: Any
) -> None:
    shell.run(w.KEEP)
    shell.run(w.LOWER_LIMIT)
    new = [trigger(cluster, shell) for _ in range(3)]
    kept = {first_run.name, *new[-w.LOWERED_LIMIT :]}
    wait_until(
        lambda: set(runs(cluster, w.SCHEDULE)) == kept,
        f"rotation to leave {sorted(kept)}",
        diagnose=lambda: diagnostics(cluster),
    )
    listed = shell.run(w.LIST_RUNS)
    assert all(name in listed for name in kept), listed
    paths = {run["status"]["path"] for run in runs(cluster, w.SCHEDULE).values()}
    # retainPolicy: Delete: the rotated runs' objects went with them.
    wait_until(
        lambda: stored_keys(minio, "backups/") == paths,
        "the rotated runs' objects to be deleted",
        diagnose=lambda: f"stored: {sorted(stored_keys(minio, 'backups/'))}, kept: {sorted(paths)}",
    )
    assert events(cluster, w.SCHEDULE, "Rotated")


def test_deleting_the_run_deletes_its_object(
    cluster: KindCluster, shell: Shell, first_run: FirstRun, minio: Any
) -> None:
    path = first_run.status["path"]
    assert stored_keys(minio, path) == {path}
    shell.run(w.DELETE_RUN)  # returns once the finalizer has let the run go
    assert absent(cluster, "backuprun", first_run.name, "-n", w.NAMESPACE)
    assert stored_keys(minio, path) == set()
