"""A BackupRun's progress from its Argo Workflow: phase, outputs, times, deadline.

Argo keeps a step's outputs in ``status.nodes[<id>].outputs.parameters``, and copies those
declared with ``globalName`` (as every backup output is, see :mod:`generator.render.pod`) into
``status.outputs.parameters``, which stays inline when the nodes are offloaded to a database.
Outputs are read from the global outputs first, then from the nodes.

A backup with Object Lock also reports ``retainUntil``, ``legalHold`` and ``locked``
(:data:`~streamer.contract.LOCK_OUTPUTS`), read the same way into a
:class:`~generator.controller.progress.Lock`, for a failed backup too: one stored but not
locked as asked fails, and its object is kept with whatever lock it carries.

A run is final once its Workflow is Succeeded, Failed or Error. A Succeeded backup that reported
no path, size or checksum (or an invalid one) is *not* a success: the run is Failed with reason
``OutputsMissing`` (a backup nobody can find or check is no backup), and is not Restorable. A
Workflow deleted before it finished, or running past the run's deadline, fails the run with its
own reason, so no run waits forever on a Workflow that will never report.

Everything here is a pure function of plain dicts; times come in as ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypedDict

from generator.controller.conditions import parse_time, rfc3339
from generator.controller.names import (
    COMPLETED,
    PHASE_ERROR,
    PHASE_FAILED,
    PHASE_PENDING,
    PHASE_RUNNING,
    PHASE_SUCCEEDED,
    PHASE_UNKNOWN,
)
from generator.controller.progress import (
    Lock,
    Progress,
    Reason,
    is_final,
    progress_of_status,
    run_status,
)
from generator.controller.settings import Settings
from generator.render.pod import DEADLINE_MARGIN_SECONDS, OUTPUT_PARAMETERS
from streamer.contract import Output

__all__ = [
    "deadline_of",
    "mirror_workflow",
    "run_status_from_workflow",
    "workflow_outputs",
]

Body = Mapping[str, Any]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _spec(run: Body) -> Mapping[str, Any]:
    spec = run.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _status(body: Body) -> Mapping[str, Any]:
    status = body.get("status")
    return status if isinstance(status, Mapping) else {}


def _name(body: Body) -> str:
    return str((body.get("metadata") or {}).get("name", ""))


# --- outputs -------------------------------------------------------------------------------


def _parameters(outputs: object) -> dict[str, str]:
    if not isinstance(outputs, Mapping):
        return {}
    found = {}
    for param in outputs.get("parameters") or ():
        if isinstance(param, Mapping) and param.get("value") is not None:
            found[str(param.get("name"))] = str(param["value"])
    return found


def _node_outputs(workflow: Body) -> dict[str, str]:
    """The outputs of the backup step: the root node (a one-template Workflow), else the
    succeeded node of the entrypoint template."""
    nodes = _status(workflow).get("nodes")
    if not isinstance(nodes, Mapping):
        return {}
    root = nodes.get(_name(workflow))
    if isinstance(root, Mapping) and _parameters(root.get("outputs")):
        return _parameters(root.get("outputs"))
    entrypoint = (workflow.get("spec") or {}).get("entrypoint")
    for node_id in sorted(nodes):
        node = nodes[node_id]
        if (
            isinstance(node, Mapping)
            and node.get("templateName") == entrypoint
            and node.get("phase") == PHASE_SUCCEEDED
            and _parameters(node.get("outputs"))
        ):
            return _parameters(node.get("outputs"))
    return {}


def workflow_outputs(workflow: Body) -> dict[str, str]:
    """The output parameters a Workflow reported: global outputs, else the step's node."""
    return {**_node_outputs(workflow), **_parameters(_status(workflow).get("outputs"))}


def _valid_outputs(raw: Mapping[str, str]) -> dict[str, str | int]:
    valid: dict[str, str | int] = {}
    for name in OUTPUT_PARAMETERS:
        value = raw.get(name, "").strip()
        if not value:
            continue
        if name == Output.SIZE_IN_BYTES:
            if value.isdigit():
                valid[name] = int(value)
        elif name != Output.SHA256 or _SHA256.match(value):
            valid[name] = value
    return valid


_BOOLEANS = {"true": True, "false": False}


def _lock(raw: Mapping[str, str]) -> Lock | None:
    """The Object Lock outputs, None when the backup reported none (it asked for no lock).

    An invalid retain-until date is dropped, as an invalid output is, and makes whether the
    object is locked unknown: the run cannot say until when.
    """
    until_text = raw.get(Output.RETAIN_UNTIL, "").strip()
    hold = _BOOLEANS.get(raw.get(Output.LEGAL_HOLD, "").strip().lower())
    locked = _BOOLEANS.get(raw.get(Output.LOCKED, "").strip().lower())
    if not until_text and hold is None and locked is None:
        return None
    until = parse_time(until_text)
    if until_text and until is None:
        locked = None
    return Lock(rfc3339(until) if until else None, bool(hold), locked)


def _offloaded(workflow: Body) -> bool:
    status = _status(workflow)
    return not status.get("nodes") and bool(
        status.get("offloadNodeStatusVersion") or status.get("compressedNodes")
    )


# --- the Workflow's progress ---------------------------------------------------------------


class _Times(TypedDict):
    """The times of a Progress, as its keyword arguments."""

    start_time: str | None
    completion_time: str | None


def _failure_text(name: str, what: str, message: object) -> str:
    return f"Workflow {name} {what}: {message}" if message else f"Workflow {name} {what}"


def _succeeded(workflow: Body, run: Body, times: _Times) -> Progress:
    name = _name(workflow)
    raw = workflow_outputs(workflow)
    outputs, lock = _valid_outputs(raw), _lock(raw)
    if not _spec(run).get("backup"):
        path = str(_spec(run).get("storage", {}).get("path", ""))
        text = f"restored {path}" if path else "restore completed"
        return Progress(PHASE_SUCCEEDED, Reason.WORKFLOW_SUCCEEDED, text, name, {}, **times)
    missing = [o for o in OUTPUT_PARAMETERS if o not in outputs]
    if missing:
        where = (
            "its node status is offloaded and it has no global outputs"
            if _offloaded(workflow)
            else "Argo reported no such outputs"
        )
        text = (
            f"Workflow {name} succeeded but its outputs {', '.join(missing)} are missing or "
            f"invalid ({where}): the backup cannot be located or checked, so it is not "
            "counted as a success; run it again"
        )
        progress = Progress(PHASE_FAILED, Reason.OUTPUTS_MISSING, text, name, outputs, **times)
        return replace(progress, lock=lock)
    url, size, sha256 = (outputs[o] for o in (Output.URL, Output.SIZE, Output.SHA256))
    text = f"stored {url} ({size}, sha256 {sha256})"
    progress = Progress(PHASE_SUCCEEDED, Reason.WORKFLOW_SUCCEEDED, text, name, outputs, **times)
    return replace(progress, lock=lock)


def _progress(workflow: Body, run: Body, now: datetime) -> Progress:
    name = _name(workflow)
    status = _status(workflow)
    phase = status.get("phase") or PHASE_UNKNOWN
    started = parse_time(status.get("startedAt"))
    finished = parse_time(status.get("finishedAt"))
    start = rfc3339(started) if started else None
    times: _Times = {
        "start_time": start,
        "completion_time": rfc3339(finished) if finished else None,
    }
    deleting = bool((workflow.get("metadata") or {}).get("deletionTimestamp"))
    if phase not in COMPLETED and deleting:
        text = f"Workflow {name} was deleted before it finished (phase {phase or 'new'})"
        return Progress(PHASE_FAILED, Reason.WORKFLOW_DELETED, text, name, {}, start, rfc3339(now))
    if phase == PHASE_SUCCEEDED:
        return _succeeded(workflow, run, times)
    raw = workflow_outputs(workflow) if phase in COMPLETED else {}
    outputs, lock = _valid_outputs(raw), _lock(raw)
    if phase == PHASE_FAILED:
        text = _failure_text(name, "failed", status.get("message"))
        progress = Progress(PHASE_FAILED, Reason.WORKFLOW_FAILED, text, name, outputs, **times)
        return replace(progress, lock=lock)
    if phase == PHASE_ERROR:
        text = _failure_text(name, "errored", status.get("message"))
        progress = Progress(PHASE_ERROR, Reason.WORKFLOW_ERROR, text, name, outputs, **times)
        return replace(progress, lock=lock)
    if phase == PHASE_RUNNING:
        return Progress(
            PHASE_RUNNING, Reason.WORKFLOW_RUNNING, f"Workflow {name} is running", name, {}, start
        )
    text = status.get("message") or f"Workflow {name} is waiting to be started by Argo"
    return Progress(PHASE_PENDING, Reason.WORKFLOW_PENDING, str(text), name, {}, start)


def deadline_of(workflow: Body, run: Body, settings: Settings) -> datetime | None:
    """When a Workflow that still runs makes its run Failed: the action's ``deadlineSeconds``
    after it started (created, if not yet started), plus Argo's margin and our grace."""
    spec = _spec(run)
    action = spec.get("backup") or spec.get("restore") or {}
    seconds = action.get("deadlineSeconds") if isinstance(action, Mapping) else None
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return None
    started = parse_time(_status(workflow).get("startedAt")) or parse_time(
        (workflow.get("metadata") or {}).get("creationTimestamp")
    )
    if started is None:
        return None
    margin = seconds + DEADLINE_MARGIN_SECONDS + settings.deadline_grace_seconds
    return started + timedelta(seconds=margin)


def mirror_workflow(
    workflow: Body, run: Body, *, settings: Settings, now: datetime
) -> tuple[Progress, float | None]:
    """The progress of a run from its Workflow, and when to look again for the deadline."""
    progress = _progress(workflow, run, now)
    if progress.final:
        return progress, None
    deadline = deadline_of(workflow, run, settings)
    if deadline is None:
        return progress, None
    if now < deadline:
        return progress, max((deadline - now).total_seconds(), 1.0)
    text = (
        f"Workflow {progress.workflow} is still {progress.phase.lower()} after the action's "
        f"deadlineSeconds, Argo's margin and {settings.deadline_grace_seconds:g}s of grace "
        f"(since {rfc3339(deadline)}); look at its Pods: the run is counted as failed"
    )
    failed = Progress(
        PHASE_FAILED,
        Reason.DEADLINE_EXCEEDED,
        text,
        progress.workflow,
        {},
        progress.start_time,
        rfc3339(now),
    )
    return failed, None


def run_status_from_workflow(
    workflow: Body, run: Body, *, settings: Settings, now: datetime
) -> tuple[dict[str, Any], float | None]:
    """The status a run gets from its Workflow, and when to look again (its deadline).

    A run already final keeps its recorded progress whatever the Workflow says now.
    """
    if is_final(run):
        return run_status(progress_of_status(run), run, now), None
    progress, requeue = mirror_workflow(workflow, run, settings=settings, now=now)
    return run_status(progress, run, now), requeue
