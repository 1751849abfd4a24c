"""The real controller process (``backup-gen controller``) against the loopback API, and its queue.

The process runs as a user runs it (:mod:`tests.controller.process`), with ``KUBECONFIG``
pointing at the emulated API; S3 is the moto server. Argo's part is played by the test
(:mod:`tests.controller.argo`). The scenarios of the controller's life are in
:mod:`tests.controller.test_scenarios`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import looptime
import pytest
from click.testing import CliRunner

from generator.cli import main
from generator.controller.reconciler import WorkQueue
from tests.conftest import FAKE_SECRET
from tests.controller.argo import ArgoPlayer
from tests.controller.kubeapi import KubeApi
from tests.controller.process import (
    CATALOGUE,
    CRONS,
    NAMESPACE,
    RUNS,
    SCHEDULES,
    SECRETS,
    STORAGES,
    TEMPLATES,
    WORKFLOWS,
    Controller,
    arrange,
    examples,
    ready,
    source_secret,
)
from tests.controller.test_kube import fail_next

# -- the queue --------------------------------------------------------------------------------

A = ("BackupRun", "db", "a")
B = ("BackupRun", "db", "b")


def in_fake_time(test: Callable[[asyncio.AbstractEventLoop], Awaitable[None]]) -> None:
    """Run ``test`` on a loop of its own whose clock only moves when all tasks wait (looptime)."""
    loop = looptime.new_event_loop()
    try:
        loop.run_until_complete(test(loop))
    finally:
        loop.close()


def test_a_key_added_twice_is_taken_once() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        queue = WorkQueue()
        queue.add(A)
        queue.add(A)
        assert await queue.get() == A
        assert len(queue) == 0

    in_fake_time(test)


def test_keys_are_taken_when_due_earliest_first() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        start = loop.time()
        queue = WorkQueue()
        queue.add(A, 5)
        queue.add(B, 2)
        assert await queue.get() == B
        assert loop.time() - start == pytest.approx(2)
        assert await queue.get() == A
        assert loop.time() - start == pytest.approx(5)

    in_fake_time(test)


@pytest.mark.parametrize(
    "delays", [pytest.param((10, 1), id="sooner-second"), pytest.param((1, 10), id="sooner-first")]
)
def test_the_sooner_of_two_times_wins(delays: tuple[float, float]) -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        start = loop.time()
        queue = WorkQueue()
        for delay in delays:
            queue.add(A, delay)
        assert await queue.get() == A
        assert loop.time() - start == pytest.approx(1)
        assert len(queue) == 0

    in_fake_time(test)


def test_a_key_added_while_busy_is_taken_again_after_it_is_done() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        queue = WorkQueue()
        queue.add(A)
        assert await queue.get() == A
        queue.add(A)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(queue.get(), 100)  # never twice at once
        queue.done(A)
        assert await queue.get() == A

    in_fake_time(test)


def test_a_waiting_worker_wakes_for_a_new_key() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        queue = WorkQueue()
        waiting = asyncio.create_task(queue.get())
        await asyncio.sleep(1)
        assert not waiting.done()
        queue.add(B)
        assert await waiting == B

    in_fake_time(test)


# -- the command line -------------------------------------------------------------------------


def test_no_kubeconfig_is_one_line_and_exit_status_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    result = CliRunner().invoke(main, ["controller", "-n", "db"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: no Kubernetes configuration: not in a cluster, and no usable kubeconfig at "
        f"{tmp_path / 'missing'} (Invalid kube-config file. No configuration found.); set "
        "KUBECONFIG or run in a Pod\n"
    )


@pytest.mark.parametrize(
    "args", [pytest.param([], id="neither"), pytest.param(["-n", "db", "-A"], id="both")]
)
def test_namespaces_or_all_of_them(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["controller", *args])
    assert result.exit_code == 2
    assert "give --namespace NS (repeatable) or --all-namespaces, not both" in result.stderr


def test_help_has_examples() -> None:
    result = CliRunner().invoke(main, ["controller", "--help"])
    assert result.exit_code == 0
    assert "backup-gen controller --all-namespaces --metrics-port 9090" in result.output


# -- the process ------------------------------------------------------------------------------


def everything_but_secret_data(kube_api: KubeApi) -> list[tuple[str, str]]:
    """Every stored object as JSON, Secrets without their data: (what, text)."""

    def specs() -> list[str]:
        return [
            f"{r.group}/{r.version}/{r.plural}" if r.group else f"{r.version}/{r.plural}"
            for r in kube_api.emulator.resources
        ]

    found = []
    for spec in kube_api.call(specs):
        for body in kube_api.list(spec):
            if body.get("kind") == "Secret":
                body = {k: v for k, v in body.items() if k not in ("data", "stringData")}
            meta = body.get("metadata") or {}
            found.append((f"{spec} {meta.get('namespace')}/{meta.get('name')}", json.dumps(body)))
    return found


def test_the_design_examples_become_argo_objects_and_ready_status(
    kube_api: KubeApi, s3_endpoint: str, bucket: str, controller: Controller
) -> None:
    schedule = arrange(kube_api, s3_endpoint, bucket)
    cron = kube_api.wait_for(
        lambda: kube_api.get(CRONS, "mysql-daily", NAMESPACE), message="the CronWorkflow"
    )
    owner = cron["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("BackupSchedule", schedule["metadata"]["uid"])
    assert cron["spec"]["schedules"] == ["0 0 * * *"]
    assert cron["spec"]["workflowMetadata"]["finalizers"] == [CATALOGUE]
    kube_api.wait_for(
        lambda: kube_api.get(TEMPLATES, "mysql-daily-restore", NAMESPACE), message="the template"
    )
    kube_api.wait_for(
        lambda: ready(kube_api.get(STORAGES, "minio")) == "True", message="storage Ready"
    )
    kube_api.wait_for(
        lambda: ready(kube_api.get(SCHEDULES, "mysql-daily", NAMESPACE)) == "True",
        message="schedule Ready",
    )
    copied = kube_api.wait_for(
        lambda: kube_api.list(SECRETS, NAMESPACE), message="the credentials' copy"
    )
    assert [c["data"] for c in copied] == [source_secret()["data"]]
    assert controller.metric("backup_operator_reconciles_total", kind="BackupSchedule") >= 1
    with urllib.request.urlopen(f"http://127.0.0.1:{controller.liveness_port}/healthz") as reply:
        assert reply.status == 200


def test_no_secret_value_reaches_logs_events_annotations_or_status(
    kube_api: KubeApi, s3_endpoint: str, bucket: str, controller: Controller
) -> None:
    arrange(kube_api, s3_endpoint, bucket)
    kube_api.wait_for(lambda: kube_api.list(SECRETS, NAMESPACE), message="the copy")
    # A bucket check that fails: its message is written to the status, and logged.
    kube_api.patch(STORAGES, "minio", {"spec": {"parameters": {"bucket": "no-such-bucket"}}})
    kube_api.wait_for(
        lambda: ready(kube_api.get(STORAGES, "minio")) == "False", message="storage not Ready"
    )
    needles = [FAKE_SECRET, base64.b64encode(FAKE_SECRET.encode()).decode()]
    texts = [("the controller's log", controller.log()), *everything_but_secret_data(kube_api)]
    for what, text in texts:
        for needle in needles:
            assert needle not in text, f"a secret value in {what}"
    events = kube_api.list("v1/events")
    assert events, "the test must see Events"
    # The log is verbose: every request was logged, and none with a body.
    assert "/api/v1/namespaces/minio/secrets/minio-credentials" in controller.log()


def test_a_cron_spawned_workflow_is_recorded_and_released(
    kube_api: KubeApi, s3_endpoint: str, bucket: str, controller: Controller, argo: ArgoPlayer
) -> None:
    arrange(kube_api, s3_endpoint, bucket)
    cron = kube_api.wait_for(lambda: kube_api.get(CRONS, "mysql-daily", NAMESPACE))
    workflow = argo.spawn_cron_workflow(cron)
    name = workflow["metadata"]["name"]
    assert workflow["metadata"]["finalizers"] == [CATALOGUE]
    kube_api.wait_for(lambda: kube_api.get(RUNS, name, NAMESPACE), message="the BackupRun")
    outputs = {
        "path": f"s3://{bucket}/backups/mysql.sql",
        "url": f"{s3_endpoint}/{bucket}/backups/mysql.sql",
        "size": "1.0 KiB",
        "sizeInBytes": "1024",
        "sha256": "ab" * 32,
        "compressed": "true",
        "encrypted": "false",
    }
    argo.finish_workflow(kube_api.get(WORKFLOWS, name, NAMESPACE) or {}, outputs=outputs)

    def succeeded() -> dict[str, Any] | None:
        run = kube_api.get(RUNS, name, NAMESPACE)
        return run if ((run or {}).get("status") or {}).get("phase") == "Succeeded" else None

    run = kube_api.wait_for(succeeded, message="the run Succeeded")
    assert run["status"]["sha256"] == "ab" * 32
    assert run["status"]["sizeInBytes"] == 1024
    kube_api.wait_for(
        lambda: (
            not (kube_api.get(WORKFLOWS, name, NAMESPACE) or {})
            .get("metadata", {})
            .get("finalizers")
        ),
        message="the catalogue's finalizer released",
    )


def test_temporary_api_errors_are_retried(
    kube_api: KubeApi, s3_endpoint: str, bucket: str, controller: Controller
) -> None:
    # More failures than one reconcile tries: the key goes back on the queue with a back-off.
    fault = fail_next(kube_api, "patch", CRONS, code=503, times=6)
    arrange(kube_api, s3_endpoint, bucket)
    kube_api.wait_for(lambda: kube_api.get(CRONS, "mysql-daily", NAMESPACE), message="the cron")
    assert fault.hits == 6
    assert (
        controller.metric(
            "backup_operator_reconcile_errors_total", kind="BackupSchedule", error="temporary"
        )
        >= 1
    )


def test_a_refused_request_is_reported_on_the_status_not_retried(
    kube_api: KubeApi, s3_endpoint: str, bucket: str, controller: Controller
) -> None:
    fail_next(kube_api, "patch", CRONS, code=422, times=1000)
    arrange(kube_api, s3_endpoint, bucket)

    def reported() -> dict[str, Any] | None:
        schedule = kube_api.get(SCHEDULES, "mysql-daily", NAMESPACE) or {}
        for cond in (schedule.get("status") or {}).get("conditions") or []:
            if cond["type"] == "Synced" and cond["status"] == "False":
                return dict(cond)
        return None

    cond = kube_api.wait_for(reported, message="a Synced=False condition")
    assert cond["reason"] == "ReconcileError"
    assert cond["message"] == (
        "cannot apply CronWorkflow/db/mysql-daily: HTTP 422 Unprocessable Entity: "
        "injected failure 422"
    )
    events = kube_api.wait_for(
        lambda: [
            e for e in kube_api.list("v1/events", NAMESPACE) if e["reason"] == "ReconcileError"
        ]
    )
    assert events[0]["involvedObject"]["name"] == "mysql-daily"
    assert events[0]["type"] == "Warning"
    kind = {"kind": "BackupSchedule"}
    assert (
        controller.metric("backup_operator_reconcile_errors_total", error="permanent", **kind) >= 1
    )
    assert (
        controller.metric("backup_operator_reconcile_errors_total", error="temporary", **kind) == 0
    )


def test_a_dropped_watch_is_resumed(
    kube_api: KubeApi, s3_endpoint: str, bucket: str, controller: Controller
) -> None:
    arrange(kube_api, s3_endpoint, bucket)
    kube_api.wait_for(lambda: kube_api.get(CRONS, "mysql-daily", NAMESPACE), message="the cron")
    schedules = kube_api.resource(SCHEDULES)
    assert kube_api.drop_watches(SCHEDULES) >= 1
    _, schedule = examples(s3_endpoint, bucket)
    schedule["metadata"]["name"] = "mysql-hourly"
    kube_api.create(SCHEDULES, schedule)
    kube_api.wait_for(
        lambda: kube_api.get(CRONS, "mysql-hourly", NAMESPACE), message="the second cron"
    )
    kube_api.wait_for(lambda: kube_api.watches(schedules) >= 1, message="a watch again")
