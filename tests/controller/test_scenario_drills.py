"""Restore drills end to end: the real controller process, the loopback API, Argo played.

A schedule with ``spec.verify`` gets a drill Workflow for its newest successful backup at each
fire time of its drill schedule; the test plays Argo (the drill passes, then one fails) and
checks what a user sees: the run's Verified condition and Events, the schedule's
``lastVerifiedTime`` and ``lastVerifiedRun``, and a backup left alone by a failed drill.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from generator.models import LABEL_VERIFIES, LABEL_VERIFY_OF
from tests.controller.argo import ArgoPlayer
from tests.controller.kubeapi import KubeApi
from tests.controller.process import NAMESPACE, RUNS, SCHEDULES, WORKFLOWS, Controller
from tests.controller.test_scenarios import (
    SCHEDULE,
    condition,
    cron_run,
    events,
    finish,
    no_event_twice,
    outputs_of,
    ready_schedule,
    run_in,
)
from tests.generator.conftest import run_validate_argo

Body = dict[str, Any]


def _drills(kube_api: KubeApi, run: str) -> list[Body]:
    found = kube_api.list(WORKFLOWS, NAMESPACE, labels=f"{LABEL_VERIFIES}={run}")
    return sorted(found, key=lambda wf: str(wf["metadata"]["name"]))


def _validate(workflow: Body, tmp_path: Path) -> None:
    """The drill the controller submitted passes Argo's own schemas."""
    manifest = {k: v for k, v in workflow.items() if k != "status"}
    meta = manifest["metadata"]
    manifest["metadata"] = {k: meta[k] for k in ("name", "namespace", "labels", "annotations")}
    path = tmp_path / "drill.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(manifest))))
    done = run_validate_argo([path])
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_drill_proves_the_newest_backup_and_a_failed_one_leaves_it_alone(
    kube_api: KubeApi,
    s3_endpoint: str,
    bucket: str,
    controller: Controller,
    argo: ArgoPlayer,
    tmp_path: Path,
) -> None:
    cron = ready_schedule(kube_api, s3_endpoint, bucket, verify={"schedule": "@every 2s"})
    name = cron_run(kube_api, argo, cron)
    key, data = f"backups/{name}.sql", f"dump of {name}".encode()
    finish(kube_api, argo, name, outputs=outputs_of(bucket, key, data))
    kube_api.wait_for(run_in(kube_api, name, "Succeeded"))

    first = kube_api.wait_for(lambda: _drills(kube_api, name), message="a drill")[0]
    assert first["metadata"]["labels"][LABEL_VERIFY_OF] == SCHEDULE
    assert first["metadata"]["ownerReferences"][0]["kind"] == "BackupSchedule"
    assert key in json.dumps(first["spec"])
    _validate(first, tmp_path)
    finish(kube_api, argo, first["metadata"]["name"])

    def verified(status: str) -> Body | None:
        run = kube_api.get(RUNS, name, NAMESPACE)
        cond = condition(run, "Verified")
        return run if cond is not None and cond["status"] == status else None

    run = kube_api.wait_for(lambda: verified("True"), message="the run is Verified")
    assert first["metadata"]["name"] in str(condition(run, "Verified"))
    schedule = kube_api.wait_for(
        lambda: (
            (s := kube_api.get(SCHEDULES, SCHEDULE, NAMESPACE))
            and (s.get("status") or {}).get("lastVerifiedRun") == name
            and s
        ),
        message="the schedule records its drill",
    )
    assert schedule["status"]["lastVerifiedTime"]
    assert events(kube_api, SCHEDULE, "DrillStarted")
    assert kube_api.wait_for(lambda: events(kube_api, name, "Verified"))

    # The next drill finds the object changed: it fails, says why, and the backup stays.
    later = kube_api.wait_for(
        lambda: [
            d for d in _drills(kube_api, name) if d["metadata"]["name"] > first["metadata"]["name"]
        ],
        message="a second drill",
    )[0]
    finish(
        kube_api,
        argo,
        later["metadata"]["name"],
        "Failed",
        outputs={
            "failure": "DigestMismatch",
            "failureMessage": "the sha256 is not the one recorded",
        },
        message="Error (exit code 1)",
    )
    run = kube_api.wait_for(lambda: verified("False"), message="the drill's failure on the run")
    cond = condition(run, "Verified")
    assert cond is not None
    assert cond["reason"] == "DigestMismatch"
    assert "the sha256 is not the one recorded" in cond["message"]
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["path"] == key
    assert kube_api.wait_for(lambda: events(kube_api, name, "DigestMismatch"))
    assert kube_api.get(RUNS, name, NAMESPACE) is not None
    no_event_twice(kube_api)
