"""A BackupRun's status from its Workflow, by tables of named cases: phases, where the outputs
are (global, node, offloaded, missing, invalid), conditions from the spec, transition times,
the deadline, a final run that keeps its status, and the Events of each transition.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from generator.controller.conditions import MAX_MESSAGE, Cond, merge_conditions
from generator.controller.plan import EmitEvent, ObjectRef
from generator.controller.progress import (
    Reason,
    is_final,
    progress_of_status,
    run_events,
    run_status,
)
from generator.controller.settings import Settings
from generator.controller.workflow_status import (
    deadline_of,
    mirror_workflow,
    run_status_from_workflow,
    workflow_outputs,
)
from tests.controller.memory import (
    NOW,
    PATH,
    SHA,
    condition_of,
    outputs,
    run_body,
    run_spec,
    workflow_body,
    workflow_status,
)

SETTINGS = Settings()
OUT = outputs()


def status_for(workflow: dict[str, Any], run: dict[str, Any] | None = None) -> dict[str, Any]:
    status, _ = run_status_from_workflow(workflow, run or run_body(), settings=SETTINGS, now=NOW)
    return status


def types(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


# --- where the outputs are -----------------------------------------------------------------

OUTPUT_CASES = [
    pytest.param(workflow_status("Succeeded", global_outputs=OUT), OUT, id="global"),
    pytest.param(workflow_status("Succeeded", node_outputs=OUT), OUT, id="node"),
    pytest.param(
        workflow_status("Succeeded", global_outputs=OUT, offloaded=True), OUT, id="offloaded-global"
    ),
    pytest.param(workflow_status("Succeeded", offloaded=True), {}, id="offloaded-none"),
    pytest.param(
        workflow_status(
            "Succeeded",
            global_outputs={"path": "global/key"},
            node_outputs=outputs(path="node/key"),
        ),
        {**OUT, "path": "global/key"},
        id="global-wins-node-fills",
    ),
    pytest.param(workflow_status("Succeeded"), {}, id="none"),
    pytest.param(workflow_status("Running"), {}, id="running"),
]


@pytest.mark.parametrize(("status", "expected"), OUTPUT_CASES)
def test_outputs_are_read_where_argo_keeps_them(
    status: dict[str, Any], expected: dict[str, str]
) -> None:
    assert workflow_outputs(workflow_body(status=status)) == expected


def test_node_outputs_of_a_step_that_is_not_the_root() -> None:
    status = workflow_status("Succeeded")
    status["nodes"] = {
        "nightly": {"id": "nightly", "type": "Steps", "templateName": "main", "phase": "Succeeded"},
        "nightly-1": {
            "id": "nightly-1",
            "type": "Pod",
            "templateName": "backup",
            "phase": "Succeeded",
            "outputs": {"parameters": [{"name": "path", "value": PATH}]},
        },
        "nightly-0": {
            "id": "nightly-0",
            "type": "Pod",
            "templateName": "backup",
            "phase": "Failed",
            "outputs": {"parameters": [{"name": "path", "value": "failed/attempt"}]},
        },
    }
    assert workflow_outputs(workflow_body(status=status)) == {"path": PATH}


# --- phases --------------------------------------------------------------------------------

PHASE_CASES = [
    pytest.param(
        workflow_status("", started=None), False, "Pending", Reason.WORKFLOW_PENDING, id="new"
    ),
    pytest.param(
        workflow_status("Pending"), False, "Pending", Reason.WORKFLOW_PENDING, id="pending"
    ),
    pytest.param(
        workflow_status("Running"), False, "Running", Reason.WORKFLOW_RUNNING, id="running"
    ),
    pytest.param(
        workflow_status("Succeeded", global_outputs=OUT),
        False,
        "Succeeded",
        Reason.WORKFLOW_SUCCEEDED,
        id="succeeded",
    ),
    pytest.param(
        workflow_status("Succeeded", node_outputs=OUT),
        False,
        "Succeeded",
        Reason.WORKFLOW_SUCCEEDED,
        id="succeeded-node-outputs",
    ),
    pytest.param(
        workflow_status("Succeeded", global_outputs=OUT, offloaded=True),
        False,
        "Succeeded",
        Reason.WORKFLOW_SUCCEEDED,
        id="succeeded-offloaded-with-global-outputs",
    ),
    pytest.param(
        workflow_status("Succeeded"),
        False,
        "Failed",
        Reason.OUTPUTS_MISSING,
        id="succeeded-no-outputs",
    ),
    pytest.param(
        workflow_status("Succeeded", offloaded=True),
        False,
        "Failed",
        Reason.OUTPUTS_MISSING,
        id="succeeded-offloaded-no-global-outputs",
    ),
    pytest.param(
        workflow_status("Succeeded", global_outputs=outputs(sha256=None)),
        False,
        "Failed",
        Reason.OUTPUTS_MISSING,
        id="succeeded-sha256-missing",
    ),
    pytest.param(
        workflow_status("Succeeded", global_outputs=outputs(sha256="not-a-checksum")),
        False,
        "Failed",
        Reason.OUTPUTS_MISSING,
        id="succeeded-sha256-invalid",
    ),
    pytest.param(
        workflow_status("Succeeded", global_outputs=outputs(sizeInBytes="1 MiB")),
        False,
        "Failed",
        Reason.OUTPUTS_MISSING,
        id="succeeded-size-not-a-number",
    ),
    pytest.param(
        workflow_status("Succeeded", global_outputs=outputs(path="")),
        False,
        "Failed",
        Reason.OUTPUTS_MISSING,
        id="succeeded-path-empty",
    ),
    pytest.param(
        workflow_status("Failed", message="child 'nightly' failed"),
        False,
        "Failed",
        Reason.WORKFLOW_FAILED,
        id="failed",
    ),
    pytest.param(
        workflow_status("Error", message="pod deleted"),
        False,
        "Error",
        Reason.WORKFLOW_ERROR,
        id="error",
    ),
    pytest.param(
        workflow_status("Running"),
        True,
        "Failed",
        Reason.WORKFLOW_DELETED,
        id="deleted-while-running",
    ),
    pytest.param(
        workflow_status("", started=None),
        True,
        "Failed",
        Reason.WORKFLOW_DELETED,
        id="deleted-before-start",
    ),
    pytest.param(
        workflow_status("Succeeded", global_outputs=OUT),
        True,
        "Succeeded",
        Reason.WORKFLOW_SUCCEEDED,
        id="deleted-after-success",
    ),
]


@pytest.mark.parametrize(("wf_status", "deleting", "phase", "reason"), PHASE_CASES)
def test_phase_and_reason(
    wf_status: dict[str, Any], deleting: bool, phase: str, reason: str
) -> None:
    status = status_for(workflow_body(status=wf_status, deleting=deleting))
    assert status["phase"] == phase
    final = phase in ("Succeeded", "Failed", "Error")
    succeeded = phase == "Succeeded"
    assert types(status) == {
        "InProgress": "False" if final else "True",
        "Successful": ("True" if succeeded else "False") if final else "Unknown",
        "Failed": ("False" if succeeded else "True") if final else "Unknown",
        "Restorable": "True" if succeeded else "False",
        "Encrypted": "False",
        "Compressed": "True",
    }
    deciding = "Successful" if succeeded else "Failed" if final else "InProgress"
    assert condition_of(status, deciding)["reason"] == reason
    assert ("completionTime" in status) == final


def test_a_successful_run_has_every_output_and_its_times() -> None:
    status = status_for(workflow_body(status=workflow_status("Succeeded", global_outputs=OUT)))
    assert status == {
        "phase": "Succeeded",
        "conditions": status["conditions"],
        "path": PATH,
        "url": f"s3://backups/{PATH}",
        "size": "1.0 MiB",
        "sizeInBytes": 1048576,
        "sha256": SHA,
        "workflow": "nightly",
        "startTime": "2024-05-01T11:59:30Z",
        "completionTime": "2024-05-01T11:59:50Z",
    }
    assert SHA in condition_of(status, "Successful")["message"]


@pytest.mark.parametrize(
    ("wf_status", "named"),
    [
        pytest.param(
            workflow_status("Succeeded"), "path, url, size, sizeInBytes, sha256", id="all"
        ),
        pytest.param(
            workflow_status("Succeeded", global_outputs=outputs(sha256="xyz")),
            "sha256",
            id="sha256",
        ),
        pytest.param(workflow_status("Succeeded", offloaded=True), "offloaded", id="offloaded"),
    ],
)
def test_outputs_missing_says_which_and_is_not_restorable(
    wf_status: dict[str, Any], named: str
) -> None:
    status = status_for(workflow_body(status=wf_status))
    failed = condition_of(status, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "OutputsMissing")
    assert named in failed["message"]
    assert condition_of(status, "Restorable")["status"] == "False"
    assert condition_of(status, "Successful")["status"] == "False"


def test_a_failure_carries_argos_message() -> None:
    wf = workflow_body(status=workflow_status("Failed", message="child 'nightly' failed"))
    assert "child 'nightly' failed" in condition_of(status_for(wf), "Failed")["message"]


def test_a_long_message_is_cut() -> None:
    wf = workflow_body(status=workflow_status("Failed", message="x" * 5000))
    message = condition_of(status_for(wf), "Failed")["message"]
    assert len(message) == MAX_MESSAGE
    assert message.endswith("…")


# --- conditions from the spec --------------------------------------------------------------

SPEC_CASES = [
    pytest.param({}, {"Encrypted": "False", "Compressed": "True"}, id="defaults-gzip"),
    pytest.param(
        {"compression": {"algorithm": "none"}}, {"Compressed": "False"}, id="uncompressed"
    ),
    pytest.param({"compression": {"level": 9}}, {"Compressed": "True"}, id="gzip-level"),
    pytest.param(
        {"encryption": {"recipients": ["age1x"], "decryptionKey": {"name": "k", "key": "k"}}},
        {"Encrypted": "True"},
        id="encrypted",
    ),
    pytest.param({"restore": None}, {"Restorable": "False"}, id="no-restore-action"),
]


@pytest.mark.parametrize(("changes", "expected"), SPEC_CASES)
def test_conditions_from_the_spec(changes: dict[str, Any], expected: dict[str, str]) -> None:
    run = run_body(spec=run_spec(**changes))
    wf = workflow_body(status=workflow_status("Succeeded", global_outputs=OUT))
    got = types(status_for(wf, run))
    assert {k: got[k] for k in expected} == expected


def test_no_restore_action_is_the_reason_it_is_not_restorable() -> None:
    run = run_body(spec=run_spec(restore=None))
    wf = workflow_body(status=workflow_status("Succeeded", global_outputs=OUT))
    assert condition_of(status_for(wf, run), "Restorable")["reason"] == "NoRestoreAction"


def test_a_restore_only_run_succeeds_without_outputs() -> None:
    run = run_body(spec=run_spec(backup=None))
    wf = workflow_body("nightly-restore", workflow_status("Succeeded"))
    status = status_for(wf, run)
    assert status["phase"] == "Succeeded"
    assert "path" not in status


def test_compression_level_is_in_the_message() -> None:
    run = run_body(spec=run_spec(compression={"level": 9}))
    wf = workflow_body(status=workflow_status("Running"))
    assert condition_of(status_for(wf, run), "Compressed")["message"] == "gzip level 9"


# --- transition times ----------------------------------------------------------------------


def test_transition_times_kept_while_a_condition_keeps_its_status() -> None:
    earlier = NOW - timedelta(minutes=5)
    running = workflow_body(status=workflow_status("Running"))
    first, _ = run_status_from_workflow(running, run_body(), settings=SETTINGS, now=earlier)
    run = run_body(status=first)
    done = workflow_body(status=workflow_status("Succeeded", global_outputs=OUT))
    second = status_for(done, run)
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times["InProgress"] == "2024-05-01T12:00:00Z"  # True -> False
    assert times["Successful"] == "2024-05-01T12:00:00Z"  # Unknown -> True
    assert times["Encrypted"] == "2024-05-01T11:55:00Z"  # False all along
    assert times["Compressed"] == "2024-05-01T11:55:00Z"


def test_a_new_reason_alone_is_no_transition() -> None:
    before = merge_conditions(
        [], [Cond("InProgress", "True", "WorkflowPending")], NOW - timedelta(hours=1)
    )
    after = merge_conditions(before, [Cond("InProgress", "True", "WorkflowRunning")], NOW)
    assert after[0]["lastTransitionTime"] == before[0]["lastTransitionTime"]
    assert after[0]["reason"] == "WorkflowRunning"


# --- deadline ------------------------------------------------------------------------------

# deadlineSeconds 600 + Argo's margin 60 + grace 300, from startedAt 11:59:30: 12:15:30.
DEADLINE_CASES = [
    pytest.param(workflow_status("Running"), NOW, "Running", 930.0, id="running-before-deadline"),
    pytest.param(
        workflow_status("Running"),
        NOW + timedelta(seconds=929),
        "Running",
        1.0,
        id="running-a-second-before",
    ),
    pytest.param(
        workflow_status("Running"),
        NOW + timedelta(seconds=930),
        "Failed",
        None,
        id="running-at-deadline",
    ),
    pytest.param(
        workflow_status("Pending", started=None),
        NOW + timedelta(hours=1),
        "Failed",
        None,
        id="pending-never-started-from-creation",
    ),
    pytest.param(
        workflow_status("Succeeded", global_outputs=OUT),
        NOW + timedelta(days=1),
        "Succeeded",
        None,
        id="finished-no-deadline",
    ),
]


@pytest.mark.parametrize(("wf_status", "now", "phase", "requeue"), DEADLINE_CASES)
def test_deadline(wf_status: dict[str, Any], now: Any, phase: str, requeue: float | None) -> None:
    progress, again = mirror_workflow(
        workflow_body(status=wf_status), run_body(), settings=SETTINGS, now=now
    )
    assert (progress.phase, again) == (phase, requeue)
    if phase == "Failed":
        assert progress.reason == Reason.DEADLINE_EXCEEDED
        assert "deadlineSeconds" in progress.message


def test_no_deadline_without_deadline_seconds() -> None:
    spec = run_spec(backup={"container": "db", "command": ["mariadb-dump"]})
    wf = workflow_body(status=workflow_status("Running"))
    assert deadline_of(wf, run_body(spec=spec), SETTINGS) is None
    progress, again = mirror_workflow(
        wf, run_body(spec=spec), settings=SETTINGS, now=NOW + timedelta(days=30)
    )
    assert (progress.phase, again) == ("Running", None)


def test_the_grace_is_a_setting() -> None:
    wf = workflow_body(status=workflow_status("Running"))
    quick = Settings(deadline_grace_seconds=0)
    _, again = mirror_workflow(wf, run_body(), settings=quick, now=NOW)
    assert again == 630.0


# --- a final run keeps its status ----------------------------------------------------------


def test_a_final_run_keeps_its_status_whatever_the_workflow_says() -> None:
    done = workflow_body(status=workflow_status("Succeeded", global_outputs=OUT))
    recorded = status_for(done)
    run = run_body(status=recorded)
    assert is_final(run)
    later = workflow_body(status=workflow_status("Failed", message="flipped"))
    assert status_for(later, run) == recorded


def test_progress_read_back_from_a_status_gives_the_same_status() -> None:
    wf = workflow_body(status=workflow_status("Failed", message="child failed"))
    recorded = status_for(wf)
    run = run_body(status=recorded)
    assert run_status(progress_of_status(run), run, NOW + timedelta(days=1)) == recorded


# --- Events --------------------------------------------------------------------------------

REF = ObjectRef("backup-operator.io/v1", "BackupRun", "nightly", "db", "uid-nightly")


def _status(phase: str | None) -> dict[str, Any]:
    if phase is None:
        return {}
    wf = {
        "Pending": workflow_status("Pending"),
        "Running": workflow_status("Running"),
        "Succeeded": workflow_status("Succeeded", global_outputs=OUT),
        "Failed": workflow_status("Failed", message="boom"),
    }[phase]
    return status_for(workflow_body(status=wf))


EVENT_CASES = [
    pytest.param(None, "Pending", [], id="created"),
    pytest.param("Pending", "Running", [("Started", "Normal")], id="started"),
    pytest.param(None, "Running", [("Started", "Normal")], id="first-seen-running"),
    pytest.param("Running", "Running", [], id="still-running"),
    pytest.param("Running", "Succeeded", [("Succeeded", "Normal")], id="succeeded"),
    pytest.param("Pending", "Succeeded", [("Succeeded", "Normal")], id="succeeded-unseen-running"),
    pytest.param("Running", "Failed", [("Failed", "Warning")], id="failed"),
    pytest.param(None, "Failed", [("Failed", "Warning")], id="failed-at-once"),
    pytest.param("Succeeded", "Succeeded", [], id="written-again"),
    pytest.param("Failed", "Failed", [], id="failed-written-again"),
]


@pytest.mark.parametrize(("old", "new", "expected"), EVENT_CASES)
def test_events_only_on_transitions(
    old: str | None, new: str, expected: list[tuple[str, str]]
) -> None:
    events = run_events(REF, _status(old), _status(new))
    assert [(e.reason, e.type) for e in events] == expected
    assert all(isinstance(e, EmitEvent) and e.regarding == REF and e.message for e in events)


# --- S3 Object Lock ------------------------------------------------------------------------

UNTIL = "2024-05-31T12:00:00Z"


def locked_outputs(until: str = UNTIL, hold: str = "false", locked: str | None = "true") -> Any:
    return outputs(retainUntil=until, legalHold=hold, locked=locked)


#: (Workflow status, status.retainUntil, status.legalHold, Locked: (status, reason, message))
LOCK_CASES = [
    pytest.param(workflow_status("Succeeded", global_outputs=OUT), None, None, None,
                 id="no-lock-asked-no-fields-no-condition"),
    pytest.param(workflow_status("Succeeded", global_outputs=locked_outputs()), UNTIL, False,
                 ("True", "Retained", f"retained until {UNTIL}"), id="retention"),
    pytest.param(workflow_status("Succeeded", global_outputs=locked_outputs(hold="true")),
                 UNTIL, True,
                 ("True", "Retained",
                  f"retained until {UNTIL} and under a legal hold (until it is lifted in S3)"),
                 id="retention-and-legal-hold"),
    pytest.param(workflow_status("Succeeded", global_outputs=locked_outputs("", "true")),
                 None, True, ("True", "LegalHold", "under a legal hold (until it is lifted"),
                 id="legal-hold-alone"),
    pytest.param(workflow_status("Succeeded", node_outputs=locked_outputs()), UNTIL, False,
                 ("True", "Retained", UNTIL), id="from-the-node"),
    pytest.param(workflow_status("Succeeded",
                                 global_outputs=locked_outputs("2024-05-31T14:00:00+02:00")),
                 UNTIL, False, ("True", "Retained", UNTIL), id="an-offset-is-written-in-utc"),
    pytest.param(workflow_status("Failed", message="stored but NOT locked",
                                 global_outputs=locked_outputs("", "false", "false")),
                 None, False,
                 ("False", "NotLocked", "stored but not locked as asked: the object is not "
                  "locked; lock it in S3"), id="stored-but-not-locked"),
    pytest.param(workflow_status("Failed", global_outputs=locked_outputs(hold="false",
                                                                         locked="false")),
                 UNTIL, False,
                 ("False", "NotLocked", f"the object is retained until {UNTIL};"),
                 id="not-locked-as-asked-but-retained"),
    pytest.param(workflow_status("Succeeded", global_outputs=locked_outputs(locked=None)),
                 UNTIL, False, ("Unknown", "LockNotReported", "missing or invalid"),
                 id="locked-not-reported"),
    pytest.param(workflow_status("Succeeded", global_outputs=locked_outputs(until="soon")),
                 None, False, ("Unknown", "LockNotReported", "until when, is unknown"),
                 id="invalid-date-is-dropped-and-makes-it-unknown"),
]  # fmt: skip


@pytest.mark.parametrize(("wf_status", "until", "hold", "locked"), LOCK_CASES)
def test_the_lock_a_backup_reported_is_in_the_status(
    wf_status: dict[str, Any],
    until: str | None,
    hold: bool | None,
    locked: tuple[str, str, str] | None,
) -> None:
    status = status_for(workflow_body(status=wf_status))
    assert status.get("retainUntil") == until
    assert status.get("legalHold") == hold
    if locked is None:
        assert "Locked" not in types(status)
        return
    cond = condition_of(status, "Locked")
    assert (cond["status"], cond["reason"]) == locked[:2]
    assert locked[2] in cond["message"], cond["message"]


def test_a_backup_not_locked_as_asked_is_failed_with_its_path_kept() -> None:
    wf = workflow_status("Failed", global_outputs=locked_outputs(locked="false"))
    status = status_for(workflow_body(status=wf))
    assert status["phase"] == "Failed"
    assert status["path"] == PATH  # the object was kept: a Delete finalizer must find it
    assert status["retainUntil"] == UNTIL


def test_a_running_backup_has_no_lock_yet() -> None:
    wf = workflow_status("Running", global_outputs=locked_outputs())
    status = status_for(workflow_body(status=wf))
    assert "retainUntil" not in status
    assert "Locked" not in types(status)


@pytest.mark.parametrize(
    "wf_status",
    [
        pytest.param(workflow_status("Succeeded", global_outputs=locked_outputs()), id="retained"),
        pytest.param(
            workflow_status("Succeeded", global_outputs=locked_outputs("", "true")),
            id="legal-hold",
        ),
        pytest.param(
            workflow_status("Failed", global_outputs=locked_outputs(locked="false")),
            id="not-locked",
        ),
        pytest.param(
            workflow_status("Succeeded", global_outputs=locked_outputs(locked=None)),
            id="unknown",
        ),
    ],
)
def test_a_final_run_keeps_its_lock(wf_status: dict[str, Any]) -> None:
    recorded = status_for(workflow_body(status=wf_status))
    run = run_body(status=recorded)
    assert run_status(progress_of_status(run), run, NOW + timedelta(days=40)) == recorded
    later = workflow_body(status=workflow_status("Succeeded", global_outputs=OUT))
    assert status_for(later, run) == recorded
