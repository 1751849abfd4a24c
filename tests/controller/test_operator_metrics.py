"""The backup metrics as the running controller serves them, after a cron-spawned run succeeded."""

from __future__ import annotations

from typing import Any

from tests.controller.argo import ArgoPlayer
from tests.controller.kubeapi import KubeApi
from tests.controller.process import Controller, arrange, ready

NAMESPACE = "db"
CRONS = "argoproj.io/v1alpha1/cronworkflows"
WORKFLOWS = "argoproj.io/v1alpha1/workflows"
RUNS = "backup-operator.io/v1/backupruns"
STORAGES = "backup-operator.io/v1/backupstorages"
SCHEDULE = {"namespace": NAMESPACE, "schedule": "mysql-daily"}


def test_the_last_success_of_a_schedule_and_the_storage_readiness_are_served(
    kube_api: KubeApi, s3_endpoint: str, bucket: str, controller: Controller, argo: ArgoPlayer
) -> None:
    arrange(kube_api, s3_endpoint, bucket)
    cron = kube_api.wait_for(lambda: kube_api.get(CRONS, "mysql-daily", NAMESPACE))
    kube_api.wait_for(lambda: ready(kube_api.get(STORAGES, "minio")) == "True")
    assert controller.metric("backup_operator_storage_ready", storage="minio") == 1.0
    assert controller.metric("backup_operator_schedule_interval_seconds", **SCHEDULE) == 86400.0
    assert "backup_operator_schedule_last_success_timestamp_seconds{" not in controller.metrics()

    name = argo.spawn_cron_workflow(cron)["metadata"]["name"]
    kube_api.wait_for(lambda: kube_api.get(RUNS, name, NAMESPACE), message="the BackupRun")
    outputs = {
        "path": f"s3://{bucket}/mysql.sql",
        "url": f"{s3_endpoint}/{bucket}/mysql.sql",
        "size": "4.0 KiB",
        "sizeInBytes": "4096",
        "sha256": "cd" * 32,
        "compressed": "true",
        "encrypted": "false",
    }
    argo.finish_workflow(kube_api.get(WORKFLOWS, name, NAMESPACE) or {}, outputs=outputs)

    def succeeded() -> dict[str, Any] | None:
        run = kube_api.get(RUNS, name, NAMESPACE) or {}
        return run if (run.get("status") or {}).get("completionTime") else None

    status = kube_api.wait_for(succeeded, message="the run completed")["status"]
    assert status["phase"] == "Succeeded"
    kube_api.wait_for(
        lambda: controller.metric("backup_operator_runs", phase="Succeeded", **SCHEDULE) == 1.0,
        message="the run counted",
    )
    size = controller.metric("backup_operator_schedule_last_success_size_bytes", **SCHEDULE)
    assert size == 4096
    last = controller.metric("backup_operator_schedule_last_success_timestamp_seconds", **SCHEDULE)
    assert last > 0
