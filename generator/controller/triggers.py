"""The ``backup-operator.io/trigger`` annotation: run a schedule now, once per value.

A trigger creates the Workflow that ``argo submit --from cronwf/NAME`` would build from the
schedule's CronWorkflow (:func:`triggered_workflow`), so it is catalogued, rotated and shown in
the Argo UI like the Workflows of the clock. Its name comes from the annotation's value
(:func:`trigger_workflow_name`) and the Workflow is created only if absent, so a controller that
stops after creating it and before clearing the annotation creates nothing twice when it comes
back: the value is the request's identity. A value is used once; to run again, set a new one
(``kubectl annotate --overwrite bsched NAME backup-operator.io/trigger="$(date +%s)"``).

The Workflow is owned by the schedule, not by the CronWorkflow as Argo's own are: the
CronWorkflow's uid is not known before it is read back, an owner reference needs one, and a
Workflow owned by the schedule is collected with it all the same. Argo finds a CronWorkflow's
Workflows by the ``workflows.argoproj.io/cron-workflow`` label (its history limits), and so does
the catalogue. A suspended schedule can be triggered: suspend stops the clock, not the user.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from generator.controller.conditions import rfc3339
from generator.controller.names import ANNOTATION_SCHEDULED_TIME, LABEL_CRON_WORKFLOW
from generator.controller.plan import Action, Body, Create, EmitEvent, ObjectRef, Patch
from generator.models import ANNOTATION_TRIGGER

__all__ = ["Trigger", "handle_trigger", "trigger_workflow_name", "triggered_workflow"]

#: Workflow names are label values on their Pods: 63 characters at most.
_MAX_WORKFLOW_NAME = 63
_MANUAL = "-manual-"


def trigger_workflow_name(schedule: str, uid: str | None, value: str) -> str:
    """``<schedule>-manual-<hash>``: the same for the same schedule and annotation value.

    The schedule's uid is part of the hash, so a schedule deleted and created again under the
    same name runs a reused value once more. A long schedule name is shortened to fit.
    """
    digest = hashlib.sha256(f"{uid or ''}/{value}".encode()).hexdigest()[:8]
    head = schedule[: _MAX_WORKFLOW_NAME - len(_MANUAL) - len(digest)].rstrip("-.")
    return f"{head}{_MANUAL}{digest}"


def triggered_workflow(
    cron: Mapping[str, Any], *, name: str, owner: Mapping[str, Any], now: datetime
) -> Body:
    """The Workflow ``argo submit --from cronwf/NAME`` builds from ``cron``, named ``name``.

    As Argo's ``ConvertCronWorkflowToWorkflow`` does: ``spec`` is the CronWorkflow's
    ``workflowSpec``; the labels are ``workflows.argoproj.io/cron-workflow`` and
    ``workflowMetadata``'s, the annotations ``workflows.argoproj.io/scheduled-time`` (now) and
    ``workflowMetadata``'s, and the finalizers ``workflowMetadata``'s (the catalogue's).
    """
    spec = cron["spec"]
    template = spec.get("workflowMetadata") or {}
    meta = cron["metadata"]
    metadata: Body = {
        "name": name,
        "namespace": meta.get("namespace"),
        "labels": {LABEL_CRON_WORKFLOW: meta["name"], **(template.get("labels") or {})},
        "annotations": {
            ANNOTATION_SCHEDULED_TIME: rfc3339(now),
            **(template.get("annotations") or {}),
        },
        "ownerReferences": [dict(owner)],
    }
    if template.get("finalizers"):
        metadata["finalizers"] = list(template["finalizers"])
    return {
        "apiVersion": cron["apiVersion"],
        "kind": "Workflow",
        "metadata": metadata,
        "spec": copy.deepcopy(spec["workflowSpec"]),
    }


@dataclass(frozen=True)
class Trigger:
    """What a schedule's trigger annotation asks for now."""

    actions: tuple[Action, ...] = ()
    #: A trigger is pending but cannot run yet (no CronWorkflow, or its storage cannot be used).
    waiting: bool = False


def handle_trigger(
    schedule: Mapping[str, Any],
    *,
    ref: ObjectRef,
    cron: Body | None,
    owner: Mapping[str, Any],
    suspended: bool,
    now: datetime,
) -> Trigger:
    """Create the trigger's Workflow, then clear the annotation, then post ``Triggered``.

    ``cron`` is the CronWorkflow as applied, None when the schedule cannot run now (the trigger
    then waits). The Event comes last: after a restart between clearing and posting, it is
    missing, never doubled.
    """
    value = ((schedule.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_TRIGGER)
    if value is None:
        return Trigger()
    if cron is None:
        return Trigger(waiting=True)
    name = trigger_workflow_name(ref.name, ref.uid, value)
    message = f"started Workflow {name} for trigger {value!r}"
    if suspended:
        message += " (the schedule is suspended; a trigger runs it all the same)"
    workflow = triggered_workflow(cron, name=name, owner=owner, now=now)
    return Trigger(
        (
            Create(workflow),
            Patch(ref, annotations={ANNOTATION_TRIGGER: None}),
            EmitEvent(ref, "Triggered", message),
        )
    )
