"""The catalogue writes a recorded run's status until its end, and never after: from then on
the run's own reconcile owns it (a restore adds its condition and time, which must stay)."""

from __future__ import annotations

from generator.controller.catalogue import record_workflow
from generator.controller.plan import ApplyStatus, RemoveFinalizer
from generator.controller.settings import Settings
from generator.models import FINALIZER_CATALOGUE
from tests.controller.bodies import NOW, run, schedule
from tests.controller.memory import outputs as memory_outputs
from tests.controller.memory import workflow_body, workflow_status

RECORDS = "backup-operator.io/records-workflow"
CRON = {"workflows.argoproj.io/cron-workflow": "nightly"}


def workflow(name: str, phase: str) -> dict:
    """A cron-spawned Workflow that ended in ``phase``, with its outputs."""
    outputs = memory_outputs(compressed="true", encrypted="false")
    return workflow_body(name, workflow_status(phase, node_outputs=outputs, name=name), labels=CRON)


def _recorded(phase: str | None) -> dict:
    body = run("nightly-1", phase, 0)
    body["metadata"]["annotations"] = {RECORDS: "nightly-1"}
    if phase == "Succeeded":  # restored once
        body["status"]["conditions"] = [
            {"type": "Restored", "status": "True", "reason": "Restored", "lastTransitionTime": "x"}
        ]
        body["status"]["restoredAt"] = "2024-05-01T13:00:00Z"
    return body


def test_a_final_run_keeps_the_status_its_reconcile_wrote() -> None:
    held = workflow("nightly-1", "Succeeded")
    held["metadata"]["finalizers"] = [FINALIZER_CATALOGUE]
    plan = record_workflow(
        held, schedule=schedule(), run=_recorded("Succeeded"), settings=Settings(), now=NOW
    )
    assert [type(a) for a in plan.actions] == [RemoveFinalizer]  # released, nothing rewritten


def test_a_run_in_progress_is_written_from_its_workflow() -> None:
    plan = record_workflow(
        workflow("nightly-1", "Succeeded"),
        schedule=schedule(),
        run=_recorded("Running"),
        settings=Settings(),
        now=NOW,
    )
    written = [a for a in plan.actions if isinstance(a, ApplyStatus)]
    assert [a.status["phase"] for a in written] == ["Succeeded"]
