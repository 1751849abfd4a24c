"""The test's Argo: the Workflows a CronWorkflow tick creates and the status Argo writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controller.argo import ArgoPlayer, cron_child, node_id, workflow_status
from tests.controller.kubeapi import KubeApi

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CRONS = "argoproj.io/v1alpha1/cronworkflows"
WORKFLOWS = "argoproj.io/v1alpha1/workflows"
TICK = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
OUTPUTS = {
    "path": "s3://b/db.sql.gz",
    "url": "https://s3/b/db.sql.gz",
    "size": "1.0 KiB",
    "sizeInBytes": "1024",
    "sha256": "ab" * 32,
}

POD_TEMPLATE: dict[str, Any] = {
    "name": "backup",
    "container": {"image": "streamer", "command": ["streamer"]},
    "outputs": {
        "parameters": [
            {"name": name, "globalName": name, "valueFrom": {"path": f"/out/{name}"}}
            for name in ("path", "url", "size", "sizeInBytes", "sha256")
        ]
        + [{"name": "local", "valueFrom": {"path": "/out/local"}}]
    },
}


def cron(**workflow_metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {
            "name": "db-nightly",
            "namespace": "team",
            "uid": "cron-uid",
            "labels": {"a": "b"},
        },
        "spec": {
            "schedules": ["0 3 * * *"],
            "workflowMetadata": workflow_metadata,
            "workflowSpec": {"entrypoint": "backup", "templates": [POD_TEMPLATE]},
        },
    }


def test_node_ids_are_fnv32a() -> None:
    assert node_id("wf", "wf") == "wf"
    assert node_id("wf", "a") == "wf-3826002220"  # FNV-1a 32 of "a" is 0xe40c292c
    assert node_id("wf", "") == "wf-2166136261"  # the offset basis


def test_a_tick_creates_the_workflow_argo_would() -> None:
    child = cron_child(
        cron(
            labels={"backup-operator.io/schedule": "db"},
            annotations={"note": "n"},
            finalizers=["backup-operator.io/catalogue"],
        ),
        TICK,
    )
    meta = child["metadata"]
    assert meta["name"] == f"db-nightly-{int(TICK.timestamp())}"
    assert meta["namespace"] == "team"
    assert meta["labels"] == {
        "workflows.argoproj.io/cron-workflow": "db-nightly",
        "backup-operator.io/schedule": "db",
    }
    assert meta["annotations"] == {
        "workflows.argoproj.io/scheduled-time": "2024-05-01T03:00:00Z",
        "note": "n",
    }
    assert meta["finalizers"] == ["backup-operator.io/catalogue"]
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "CronWorkflow",
            "name": "db-nightly",
            "uid": "cron-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert child["spec"] == cron()["spec"]["workflowSpec"]
    assert "finalizers" not in cron_child(cron(), TICK, "named")["metadata"]
    assert cron_child(cron(), TICK, "named")["metadata"]["name"] == "named"


def test_a_succeeded_pod_workflow_has_its_outputs_where_argo_keeps_them() -> None:
    wf = cron_child(cron(), TICK, "w")
    status = workflow_status(
        wf,
        phase="Succeeded",
        outputs={**OUTPUTS, "local": "x"},
        started=TICK,
        finished=TICK + timedelta(minutes=2),
    )
    assert (status["phase"], status["startedAt"], status["finishedAt"]) == (
        "Succeeded",
        "2024-05-01T03:00:00Z",
        "2024-05-01T03:02:00Z",
    )
    assert list(status["nodes"]) == ["w"], "a pod entrypoint is the one root node"
    node = status["nodes"]["w"]
    assert (node["type"], node["templateName"], node["phase"]) == ("Pod", "backup", "Succeeded")
    by_name = {p["name"]: p for p in node["outputs"]["parameters"]}
    assert by_name["sha256"] == {
        "name": "sha256",
        "globalName": "sha256",
        "valueFrom": {"path": "/out/sha256"},
        "value": "ab" * 32,
    }
    assert by_name["local"]["value"] == "x"
    assert status["outputs"]["parameters"] == [
        {"name": k, "value": v} for k, v in OUTPUTS.items()
    ], "only globalName ones"
    assert status["progress"] == "1/1"
    assert "message" not in status


def test_a_failed_workflow_says_why() -> None:
    status = workflow_status(
        cron_child(cron(), TICK, "w"), phase="Failed", started=TICK, message="OOMKilled"
    )
    assert status["message"] == "OOMKilled"
    assert status["nodes"]["w"]["message"] == "OOMKilled"
    assert status["nodes"]["w"]["outputs"] == {"exitCode": "1"}
    assert "outputs" not in status


def test_a_running_workflow_has_no_finish() -> None:
    status = workflow_status(cron_child(cron(), TICK, "w"), phase="Running", started=TICK)
    assert "finishedAt" not in status
    assert "finishedAt" not in status["nodes"]["w"]
    assert status["progress"] == "0/1"


def test_steps_get_a_node_each() -> None:
    wf = cron_child(cron(), TICK, "w")
    wf["spec"]["entrypoint"] = "main"
    wf["spec"]["templates"].append(
        {"name": "main", "steps": [[{"name": "dump", "template": "backup"}]]}
    )
    nodes = workflow_status(wf, phase="Succeeded", outputs=OUTPUTS, started=TICK)["nodes"]
    pod = nodes[node_id("w", "w[0].dump")]
    assert (pod["type"], pod["displayName"], len(pod["outputs"]["parameters"])) == (
        "Pod",
        "dump",
        5,
    )
    assert nodes["w"]["children"] == [node_id("w", "w[0]")]
    assert nodes[node_id("w", "w[0]")]["children"] == [pod["id"]]


@pytest.mark.parametrize(
    "golden", sorted(GOLDEN.glob("*.argo.yaml")), ids=lambda p: p.name.removesuffix(".argo.yaml")
)
def test_the_player_understands_what_the_renderer_makes(golden: Path) -> None:
    for doc in yaml.safe_load_all(golden.read_text()):
        if not doc or doc.get("kind") not in ("Workflow", "CronWorkflow"):
            continue
        wf = (
            cron_child({**doc, "metadata": {**doc["metadata"], "uid": "u"}}, TICK)
            if doc["kind"] == "CronWorkflow"
            else doc
        )
        templates = {t["name"]: t for t in wf["spec"]["templates"]}
        declared = (templates[wf["spec"]["entrypoint"]].get("outputs") or {}).get(
            "parameters"
        ) or []
        values = {p["name"]: f"value-of-{p['name']}" for p in declared}
        status = workflow_status(wf, phase="Succeeded", outputs=values, started=TICK)
        globals_ = {
            p["globalName"]: f"value-of-{p['name']}" for p in declared if p.get("globalName")
        }
        assert {
            p["name"]: p["value"] for p in (status.get("outputs") or {}).get("parameters", [])
        } == globals_


# -- against the loopback API ----------------------------------------------------------------


def test_spawn_and_finish_through_the_api(kube_api: KubeApi, argo: ArgoPlayer) -> None:
    stored_cron = kube_api.create(CRONS, cron(finalizers=["backup-operator.io/catalogue"]))
    wf = argo.spawn_cron_workflow(stored_cron, scheduled_time=TICK)
    assert wf["metadata"]["ownerReferences"][0]["uid"] == stored_cron["metadata"]["uid"]
    running = argo.start_workflow(wf, started=TICK)
    assert running["metadata"]["labels"]["workflows.argoproj.io/completed"] == "false"
    kube_api.fail_next("PUT", WORKFLOWS, code=409)  # a concurrent write: Argo reads again
    done = argo.finish_workflow(
        wf, "Succeeded", OUTPUTS, started=TICK, finished=TICK + timedelta(minutes=1)
    )
    assert done["status"]["phase"] == "Succeeded"
    assert done["metadata"]["labels"]["workflows.argoproj.io/phase"] == "Succeeded"
    stored = kube_api.get(WORKFLOWS, wf["metadata"]["name"], "team")
    assert stored == done
    kube_api.delete(CRONS, "db-nightly", "team")
    held = kube_api.get(WORKFLOWS, wf["metadata"]["name"], "team")
    assert held is not None
    assert held["metadata"]["deletionTimestamp"], "owned, and held by the finalizer"


def test_history_limits(kube_api: KubeApi, argo: ArgoPlayer) -> None:
    spec = cron()
    spec["spec"] |= {"successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1}
    stored_cron = kube_api.create(CRONS, spec)
    names = []
    for hour in range(5):
        wf = argo.spawn_cron_workflow(stored_cron, scheduled_time=TICK + timedelta(hours=hour))
        phase = "Failed" if hour in (1, 3) else "Succeeded"
        argo.finish_workflow(wf, phase, finished=TICK + timedelta(hours=hour, minutes=5))
        names.append(wf["metadata"]["name"])
    deleted = argo.collect_history(stored_cron)
    assert sorted(deleted) == sorted([names[0], names[1]])
    assert sorted(w["metadata"]["name"] for w in kube_api.list(WORKFLOWS, "team")) == sorted(
        names[2:]
    )
