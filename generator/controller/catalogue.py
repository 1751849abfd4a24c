"""The catalogue: every Workflow a schedule's CronWorkflow spawns, recorded as a BackupRun.

Argo deletes a CronWorkflow's finished Workflows beyond its own history limits, so a Workflow
must be recorded before Argo may delete it: the CronWorkflow rendered for the controller gives
each Workflow the finalizer :data:`~generator.controller.names.FINALIZER_CATALOGUE`, and
:func:`record_workflow` removes it only after the Workflow's end has been recorded (or the
Workflow is being deleted, and its run recorded as such). Recording always comes first in the
plan, so a restart between the two steps records nothing twice and loses nothing: the next
plan finds the run recorded and releases the Workflow. A finished Workflow that no longer holds
the finalizer was recorded before: when its record is gone (rotated away), it is not recorded
again.

The record is BackupRun ``<workflow name>`` in the Workflow's namespace, owned by the schedule
(deleting the schedule collects its history), labelled with the schedule and storage, annotated
with the Workflow it records (so no Workflow is ever created for it), its spec the schedule's
run template. It is applied once, when first seen: a later edit of the schedule does not rewrite
what an earlier run did. Its status is mirrored from the Workflow as for any run
(:mod:`generator.controller.workflow_status`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from generator.controller.names import (
    ANNOTATION_RECORDS,
    ANNOTATION_SCHEDULED_TIME,
    COMPLETED,
    FINALIZER_CATALOGUE,
    FINALIZER_STORED_OBJECT,
    LABEL_CRON_WORKFLOW,
    LABEL_MANAGED_BY,
    MANAGED_BY,
)
from generator.controller.objects import Body, meta_of, owner_reference, spec_of
from generator.controller.plan import (
    Action,
    Apply,
    ApplyStatus,
    EmitEvent,
    Plan,
    RemoveFinalizer,
    ref_of,
)
from generator.controller.progress import is_final, owned_status, run_events
from generator.controller.settings import Settings
from generator.controller.workflow_status import run_status_from_workflow
from generator.models import API_VERSION, LABEL_SCHEDULE, LABEL_STORAGE, BackupRun

__all__ = ["record_body", "record_workflow", "records"]


def records(run: Mapping[str, Any], workflow: Mapping[str, Any]) -> bool:
    """Whether ``run`` is the catalogue's record of ``workflow``."""
    annotations = meta_of(run).get("annotations") or {}
    return bool(annotations.get(ANNOTATION_RECORDS) == meta_of(workflow).get("name"))


def record_body(workflow: Mapping[str, Any], schedule: Mapping[str, Any]) -> Body:
    """The BackupRun that records ``workflow``, spawned for ``schedule``, as applied."""
    wf_meta = meta_of(workflow)
    template = spec_of(schedule).get("template") or {}
    template_meta = template.get("metadata") or {}
    spec = copy.deepcopy(dict(template.get("spec") or {}))
    storage = str((spec.get("storage") or {}).get("name", ""))
    labels = {
        **(template_meta.get("labels") or {}),
        LABEL_SCHEDULE: str(meta_of(schedule).get("name", "")),
        LABEL_STORAGE: storage,
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    annotations = {
        **(template_meta.get("annotations") or {}),
        ANNOTATION_RECORDS: str(wf_meta.get("name", "")),
    }
    scheduled = (wf_meta.get("annotations") or {}).get(ANNOTATION_SCHEDULED_TIME)
    if scheduled:
        annotations[ANNOTATION_SCHEDULED_TIME] = str(scheduled)
    metadata: Body = {
        "name": wf_meta.get("name"),
        "namespace": wf_meta.get("namespace"),
        "labels": labels,
        "annotations": annotations,
        "ownerReferences": [owner_reference(schedule)],
    }
    if spec.get("retainPolicy") == "Delete":
        # Held from the start: rotation may delete a run before it was ever reconciled.
        metadata["finalizers"] = [FINALIZER_STORED_OBJECT]
    return {"apiVersion": API_VERSION, "kind": BackupRun.kind, "metadata": metadata, "spec": spec}


def record_workflow(
    workflow: Body,
    *,
    schedule: Body | None,
    run: Body | None,
    settings: Settings,
    now: datetime,
) -> Plan:
    """The plan that records one Workflow of a CronWorkflow, then releases it.

    ``schedule`` is the BackupSchedule the Workflow's ``cron-workflow`` label names (None when
    there is none, or it is being deleted: the Workflow is then just released); ``run`` the
    BackupRun named after the Workflow, if it exists.
    """
    meta = meta_of(workflow)
    if not (meta.get("labels") or {}).get(LABEL_CRON_WORKFLOW):
        return Plan()
    wf_ref = ref_of(workflow)
    holds = FINALIZER_CATALOGUE in (meta.get("finalizers") or ())
    release: list[Action] = [RemoveFinalizer(wf_ref, FINALIZER_CATALOGUE)] if holds else []
    if schedule is None or meta_of(schedule).get("deletionTimestamp"):
        return Plan(tuple(release))
    ended = (workflow.get("status") or {}).get("phase") in COMPLETED
    if run is None and ended and not holds:
        return Plan()  # recorded and released before: its record was deleted since (rotation)
    if run is not None and not records(run, workflow):
        if not holds:
            return Plan()
        text = (
            f"Workflow {wf_ref.name} cannot be recorded: a BackupRun of that name exists and "
            "records something else; rename or delete it to keep this run's history"
        )
        warning = EmitEvent(ref_of(schedule), "RecordConflict", text, "Warning")
        return Plan((*release, warning))
    record = run if run is not None else record_body(workflow, schedule)
    actions: list[Action] = [] if run is not None else [Apply(record)]
    before = owned_status(record)
    if is_final(record):
        # Its end is recorded: from then on the status is the run's own reconcile's, which
        # adds to it (a restore's condition and time), and is not written again from here.
        status, requeue = before, None
    else:
        status, requeue = run_status_from_workflow(workflow, record, settings=settings, now=now)
    ref = ref_of(record)
    if status != before:
        actions.append(ApplyStatus(ref, status))
    actions += run_events(ref, before, status)
    if (ended and status["phase"] in COMPLETED) or meta.get("deletionTimestamp"):
        actions += release
    return Plan(tuple(actions), requeue)
