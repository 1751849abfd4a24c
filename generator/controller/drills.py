"""Restore drills: proving on a schedule that the newest backup of a schedule really restores.

A BackupSchedule with ``spec.verify`` is drilled at each fire time of ``verify.schedule``
(:func:`~generator.controller.cron.fires_around`, in ``verify.timeZone``). Two pure decisions:

- :func:`schedule_drills`, part of the schedule's reconcile: at a fire time not yet handled
  (``status.lastVerifyScheduleTime`` is older, and the schedule existed then; neither the drills
  nor the schedule suspended), the newest
  successful BackupRun of the schedule that stored an object is drilled: a Workflow
  :func:`drill_name` (deterministic: a restart creates none twice; Create is create-if-absent)
  rendered by :func:`~generator.render.render_drill`, owned by the schedule, then the fire time
  is recorded and a ``DrillStarted`` Event posted. Without a successful run there is nothing to
  prove: a ``NothingToVerify`` Warning, and the fire time counts as handled. While the storage
  cannot be used the drill waits (the schedule is looked at again in
  :data:`STORAGE_RECHECK_SECONDS`). The schedule's ``lastVerifiedTime`` and
  ``lastVerifiedRun`` come from its drills that succeeded, and never move back. Finished drills
  beyond the newest :data:`DRILLS_KEPT` are deleted once their run has recorded them.
- :func:`verified_condition`, part of a run's reconcile: the newest finished drill of the run
  sets its ``Verified`` condition: True (reason ``Verified``) or False with the drill's reason
  (:data:`~streamer.contract.FAILURES`: ``DigestMismatch``, ``DecryptFailed``, ``CheckFailed``…;
  ``DrillFailed`` when the Workflow failed before the streamer could say why). The message says
  which drill, of which level, when, and why. A drill never changes the run's phase and never
  deletes it: a backup that failed its drill is kept, for a person to look at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from generator.controller.conditions import Cond, condition, parse_time, rfc3339
from generator.controller.cron import fires_around
from generator.controller.names import (
    COMPLETED,
    CONDITION_VERIFIED,
    PHASE_SUCCEEDED,
)
from generator.controller.objects import (
    meta_of,
    parse_run,
    parse_storage,
    render_options,
    spec_problems,
    storage_name,
    workflow_body,
)
from generator.controller.plan import Action, Create, Delete, EmitEvent, ObjectRef, ref_of
from generator.controller.settings import Settings
from generator.controller.workflow_status import workflow_outputs
from generator.errors import GeneratorError
from generator.models import LABEL_VERIFIES, LABEL_VERIFY_LEVEL, BackupRunStatus, BackupSchedule
from generator.render import render_drill
from streamer.contract import Output

__all__ = [
    "ANNOTATION_DRILL_TIME",
    "DRILLS_KEPT",
    "REASON_DRILL_FAILED",
    "REASON_VERIFIED",
    "DrillStep",
    "drill_name",
    "run_verified",
    "schedule_drills",
    "verified_condition",
    "verified_events",
]

Body = Mapping[str, Any]

#: On a drill's Workflow: the fire time of ``verify.schedule`` it was made for.
ANNOTATION_DRILL_TIME = "backup-operator.io/drill-time"
#: Finished drills a schedule keeps (their results stay on the runs they drilled).
DRILLS_KEPT = 3
#: How soon a drill that waits for its storage is looked at again.
STORAGE_RECHECK_SECONDS = 60.0
#: The longest a schedule with drills waits between two looks (a clock or time zone change).
MAX_WAIT_SECONDS = 86400.0
#: The Verified condition's reasons besides the streamer's failures.
REASON_VERIFIED = "Verified"
REASON_DRILL_FAILED = "DrillFailed"
#: Kubernetes names that become label values (Argo labels Pods with the Workflow's name).
_MAX_NAME = 63


@dataclass
class DrillStep:
    """What the drills add to a schedule's plan: actions, status fields, a wake-up."""

    actions: list[Action] = field(default_factory=list)
    events: list[EmitEvent] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)
    requeue_after: float | None = None


def drill_name(schedule: str, fired: datetime) -> str:
    """``<schedule>-verify-<unix time>``, shortened with a hash to fit a label value."""
    suffix = f"-verify-{int(fired.timestamp())}"
    if len(schedule) + len(suffix) <= _MAX_NAME:
        return schedule + suffix
    digest = hashlib.sha256(schedule.encode()).hexdigest()[:8]
    head = schedule[: _MAX_NAME - len(suffix) - len(digest) - 1].rstrip("-.")
    return f"{head}-{digest}{suffix}"


def _level(drill: Body) -> str:
    return str((meta_of(drill).get("labels") or {}).get(LABEL_VERIFY_LEVEL) or "integrity")


def _finished_at(drill: Body) -> datetime | None:
    status = drill.get("status") or {}
    return parse_time(status.get("finishedAt")) or parse_time(status.get("startedAt"))


def _order(drill: Body) -> tuple[str, str]:
    finished = _finished_at(drill)
    return (rfc3339(finished) if finished is not None else "", str(meta_of(drill).get("name", "")))


def _final(drills: Sequence[Body]) -> list[Body]:
    """The drills that ended, oldest first."""
    ended = [d for d in drills if (d.get("status") or {}).get("phase") in COMPLETED]
    return sorted(ended, key=_order)


def verified_condition(drills: Sequence[Body]) -> Cond | None:
    """The run's ``Verified`` condition from the newest of its drills that ended; None while
    none has (the condition the run has, if any, stays)."""
    ended = _final(drills)
    if not ended:
        return None
    drill = ended[-1]
    name = str(meta_of(drill).get("name", ""))
    level = _level(drill)
    when = _finished_at(drill)
    at = f" at {rfc3339(when)}" if when is not None else ""
    status = drill.get("status") or {}
    if status.get("phase") == PHASE_SUCCEEDED:
        proof = (
            "restored into a scratch container and passed its check"
            if level == "restore"
            else "downloaded, decrypted and decompressed, and its SHA-256 is the one recorded"
        )
        text = f"{level} drill {name} passed{at}: the backup was {proof}"
        return Cond(CONDITION_VERIFIED, "True", REASON_VERIFIED, text)
    outputs = workflow_outputs(drill)
    reason = outputs.get(Output.FAILURE, "").strip() or REASON_DRILL_FAILED
    why = outputs.get(Output.FAILURE_MESSAGE, "").strip() or str(status.get("message") or "")
    text = f"{level} drill {name} failed{at}: {why or 'the Workflow failed'}"
    text += f"; see `argo logs {name}`"
    return Cond(CONDITION_VERIFIED, "False", reason, text)


def run_verified(run: Body, drills: Sequence[Body]) -> Cond | None:
    """The ``Verified`` condition a run's status carries: its newest drill's result, else the
    one it has (its drills are deleted in time; the result stays)."""
    verified = verified_condition(drills)
    if verified is not None:
        return verified
    had = condition((run.get("status") or {}).get("conditions"), CONDITION_VERIFIED)
    if had is None or had.get("status") not in ("True", "False"):
        return None
    status: Literal["True", "False"] = "True" if had["status"] == "True" else "False"
    reason = str(had.get("reason") or REASON_DRILL_FAILED)
    return Cond(CONDITION_VERIFIED, status, reason, str(had.get("message") or ""))


def verified_events(ref: ObjectRef, before: Body, after: Body) -> list[EmitEvent]:
    """One Event for each new drill result on a run (a new message: every drill's differs)."""
    new = condition(after.get("conditions"), CONDITION_VERIFIED)
    old = condition(before.get("conditions"), CONDITION_VERIFIED)
    if new is None or (old is not None and old.get("message") == new.get("message")):
        return []
    kind: Literal["Normal", "Warning"] = "Normal" if new.get("status") == "True" else "Warning"
    return [EmitEvent(ref, str(new.get("reason")), str(new.get("message", "")), kind)]


def _newest_success(runs: Sequence[Body]) -> Body | None:
    """The newest successful run that stored an object, not being deleted."""
    done = []
    for run in runs:
        status = run.get("status") or {}
        if status.get("phase") != PHASE_SUCCEEDED or not status.get("path"):
            continue
        if meta_of(run).get("deletionTimestamp"):
            continue
        when = parse_time(status.get("completionTime")) or parse_time(status.get("startTime"))
        done.append((rfc3339(when) if when is not None else "", str(meta_of(run)["name"]), run))
    return max(done, key=lambda item: item[:2])[2] if done else None


def _verified(previous: Body, drills: Sequence[Body]) -> dict[str, str]:
    """``lastVerifiedTime`` and ``lastVerifiedRun``: the newest drill that succeeded, or what
    the status says if that is newer (drills are deleted; the record is not)."""
    best = (parse_time(previous.get("lastVerifiedTime")), previous.get("lastVerifiedRun"))
    for drill in _final(drills):
        when = _finished_at(drill)
        if (drill.get("status") or {}).get("phase") != PHASE_SUCCEEDED or when is None:
            continue
        if best[0] is None or when > best[0]:
            best = (when, (meta_of(drill).get("labels") or {}).get(LABEL_VERIFIES))
    status: dict[str, str] = {}
    if best[0] is not None:
        status["lastVerifiedTime"] = rfc3339(best[0])
        if best[1]:
            status["lastVerifiedRun"] = str(best[1])
    return status


def _recorded(drill: Body, runs: Mapping[str, Body]) -> bool:
    """Whether the run a drill checked has its result (or is gone, with nothing to record)."""
    run = runs.get(str((meta_of(drill).get("labels") or {}).get(LABEL_VERIFIES, "")))
    if run is None:
        return True
    verified = condition((run.get("status") or {}).get("conditions"), CONDITION_VERIFIED)
    return verified is not None and f" {meta_of(drill).get('name')} " in str(
        verified.get("message", "")
    )


def _cleanup(drills: Sequence[Body], runs: Sequence[Body]) -> list[Action]:
    by_name = {str(meta_of(run).get("name")): run for run in runs}
    old = _final(drills)[:-DRILLS_KEPT]
    return [Delete(ref_of(drill)) for drill in old if _recorded(drill, by_name)]


def _start(
    schedule: Body,
    model: BackupSchedule,
    run: Body,
    storage: Body,
    settings: Settings,
    name: str,
    fired: datetime,
) -> tuple[list[Action], EmitEvent]:
    """The drill Workflow of ``run`` and its Event; a Warning instead if it cannot render."""
    ref = ref_of(schedule)
    verify = model.spec.verify
    assert verify is not None
    try:
        recorded = run.get("status") or {}
        drilled = parse_run(run).model_copy(
            update={
                "status": BackupRunStatus(path=recorded.get("path"), sha256=recorded.get("sha256"))
            }
        )
        drill = render_drill(
            drilled,
            verify,
            parse_storage(storage),
            render_options(settings, storage_name(run)),
            name=name,
            schedule=model.metadata.name,
        )
    except (ValidationError, GeneratorError) as exc:
        why = spec_problems(exc) if isinstance(exc, ValidationError) else str(exc)
        text = f"the drill of run {meta_of(run).get('name')} cannot be made: {why}"
        return [], EmitEvent(ref, "DrillInvalid", text, "Warning")
    body = workflow_body(drill, schedule)
    body["metadata"].setdefault("annotations", {})[ANNOTATION_DRILL_TIME] = rfc3339(fired)
    text = (
        f"{verify.level} drill {name} of run {meta_of(run).get('name')} submitted "
        f"(verify.schedule fired at {rfc3339(fired)})"
    )
    return [Create(body)], EmitEvent(ref, "DrillStarted", text)


def schedule_drills(
    schedule: Body,
    model: BackupSchedule,
    *,
    runs: Sequence[Body],
    drills: Sequence[Body],
    storage: Body | None,
    storage_ok: bool,
    settings: Settings,
    now: datetime,
) -> DrillStep:
    """The drills' part of a schedule's plan (see the module docstring). ``runs`` are the
    schedule's runs, ``drills`` the Workflows labelled as its drills."""
    previous: Body = schedule.get("status") or {}
    step = DrillStep(status=_verified(previous, drills))
    handled = previous.get("lastVerifyScheduleTime")
    if handled:
        step.status["lastVerifyScheduleTime"] = str(handled)
    verify = model.spec.verify
    if verify is None:
        return step
    step.actions += _cleanup(drills, runs)
    fired, following = fires_around(verify.schedule, now, verify.time_zone)
    if following is not None:
        step.requeue_after = min(max((following - now).total_seconds(), 1.0), MAX_WAIT_SECONDS)
    created = parse_time(meta_of(schedule).get("creationTimestamp"))
    done = parse_time(handled)
    suspended = verify.suspend or model.spec.suspend
    if fired is None or suspended or (created is not None and fired < created):
        return step
    if done is not None and fired <= done:
        return step
    if not storage_ok or storage is None:
        waits = [STORAGE_RECHECK_SECONDS, step.requeue_after or STORAGE_RECHECK_SECONDS]
        step.requeue_after = min(waits)
        return step
    step.status["lastVerifyScheduleTime"] = rfc3339(fired)
    target = _newest_success(runs)
    if target is None:
        text = (
            f"verify.schedule fired at {rfc3339(fired)}, but the schedule has no successful "
            "backup to drill yet"
        )
        step.events.append(EmitEvent(ref_of(schedule), "NothingToVerify", text, "Warning"))
        return step
    name = drill_name(model.metadata.name, fired)
    created_actions, event = _start(schedule, model, target, storage, settings, name, fired)
    step.actions += created_actions
    step.events.append(event)
    return step
