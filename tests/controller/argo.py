"""The test plays Argo: the Workflows a CronWorkflow tick creates, and the status Argo writes.

What it reproduces, from Argo Workflows' own code (``workflow/common`` ``toWorkflow``, the
cron operator, the workflow operator's node bookkeeping):

- a tick of CronWorkflow ``c`` at time ``t`` creates Workflow ``c-<unix t>`` with the label
  ``workflows.argoproj.io/cron-workflow=c``, the annotation
  ``workflows.argoproj.io/scheduled-time`` (RFC 3339), a controller owner reference to the
  CronWorkflow, the CronWorkflow's ``workflowMetadata`` labels, annotations and finalizers,
  and ``spec = workflowSpec``;
- the status Argo writes: ``phase``, ``startedAt``, ``finishedAt``, ``progress``, a node per
  step (id ``<workflow>-<fnv32a(node name)>``, the root node's id the Workflow's name; a
  Workflow whose entrypoint is a pod template has that one Pod node), the outputs on the pod
  node that produced them, ``status.outputs.parameters`` holding only the parameters declared
  with ``globalName`` (named by it), a message on failure, and the labels
  ``workflows.argoproj.io/phase`` / ``workflows.argoproj.io/completed``;
- Argo updates a Workflow whole (PUT with its resourceVersion), so a concurrent write of the
  controller makes it read again and retry, as Argo's controller does;
- the history limits of a CronWorkflow: finished children beyond ``successfulJobsHistoryLimit``
  (default 3) and ``failedJobsHistoryLimit`` (default 1) are deleted, oldest ``finishedAt``
  first.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from tests.controller.apierrors import ApiError
from tests.controller.kubeapi import KubeApi

__all__ = ["ArgoPlayer", "cron_child", "node_id", "workflow_status"]

Body = dict[str, Any]
API_VERSION = "argoproj.io/v1alpha1"
WORKFLOWS = "argoproj.io/v1alpha1/workflows"
CRON_WORKFLOWS = "argoproj.io/v1alpha1/cronworkflows"
LABEL_CRON_WORKFLOW = "workflows.argoproj.io/cron-workflow"
LABEL_INSTANCE_ID = "workflows.argoproj.io/controller-instanceid"
LABEL_PHASE = "workflows.argoproj.io/phase"
LABEL_COMPLETED = "workflows.argoproj.io/completed"
ANNOTATION_SCHEDULED_TIME = "workflows.argoproj.io/scheduled-time"
COMPLETED = frozenset({"Succeeded", "Failed", "Error"})
_POD_TEMPLATES = ("container", "script", "containerSet", "resource", "data")


def rfc3339(when: datetime) -> str:
    text = when.isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


def node_id(workflow: str, node_name: str) -> str:
    """Argo's node id: the Workflow's name for the root node, else ``<workflow>-<fnv32a>``."""
    if node_name == workflow:
        return workflow
    value = 0x811C9DC5
    for byte in node_name.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{workflow}-{value}"


def cron_child(cron: Mapping[str, Any], scheduled_time: datetime, name: str | None = None) -> Body:
    """The Workflow a tick of ``cron`` (as stored: it has a uid) at ``scheduled_time`` creates."""
    meta, spec = cron["metadata"], cron["spec"]
    extra = spec.get("workflowMetadata") or {}
    labels = {LABEL_CRON_WORKFLOW: meta["name"]}
    if LABEL_INSTANCE_ID in (meta.get("labels") or {}):
        labels[LABEL_INSTANCE_ID] = meta["labels"][LABEL_INSTANCE_ID]
    labels.update(extra.get("labels") or {})
    annotations = {ANNOTATION_SCHEDULED_TIME: rfc3339(scheduled_time)}
    annotations.update(extra.get("annotations") or {})
    owner = {
        "apiVersion": API_VERSION,
        "kind": "CronWorkflow",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    child_meta: Body = {
        "name": name or f"{meta['name']}-{int(scheduled_time.timestamp())}",
        "namespace": meta.get("namespace"),
        "labels": labels,
        "annotations": annotations,
        "ownerReferences": [owner],
    }
    if extra.get("finalizers"):
        child_meta["finalizers"] = list(extra["finalizers"])
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": child_meta,
        "spec": copy.deepcopy(spec.get("workflowSpec") or {}),
    }


def _pod_steps(workflow: Mapping[str, Any]) -> tuple[str, list[tuple[str, str, str | None]]]:
    """The root node's type, and (node name, template, parent node name) per node under it."""
    name = workflow["metadata"]["name"]
    spec = workflow.get("spec") or {}
    templates = {t["name"]: t for t in spec.get("templates") or []}
    entry = templates.get(spec.get("entrypoint", ""), {})
    if "steps" in entry:
        nodes: list[tuple[str, str, str | None]] = []
        for index, group in enumerate(entry["steps"] or []):
            group_name = f"{name}[{index}]"
            nodes.append((group_name, "", name))
            nodes += [
                (f"{group_name}.{step['name']}", step["template"], group_name) for step in group
            ]
        return "Steps", nodes
    if "dag" in entry:
        tasks = entry["dag"].get("tasks") or []
        return "DAG", [(f"{name}.{task['name']}", task["template"], name) for task in tasks]
    return "Pod", []


def _outputs(template: Mapping[str, Any], outputs: Mapping[str, str]) -> list[Body]:
    declared = (template.get("outputs") or {}).get("parameters") or []
    return [
        {**param, "value": str(outputs[param["name"]])}
        for param in declared
        if param["name"] in outputs
    ]


def workflow_status(
    workflow: Mapping[str, Any],
    *,
    phase: str,
    outputs: Mapping[str, str] | None = None,
    started: datetime,
    finished: datetime | None = None,
    message: str | None = None,
) -> Body:
    """The status Argo writes on ``workflow`` in ``phase``, with pod outputs ``outputs``."""
    name = workflow["metadata"]["name"]
    spec = workflow.get("spec") or {}
    templates = {t["name"]: t for t in spec.get("templates") or []}
    done = phase in COMPLETED
    failed = phase in ("Failed", "Error")
    times = {"startedAt": rfc3339(started)}
    if done:
        times["finishedAt"] = rfc3339(finished or started)
    root_type, children = _pod_steps(workflow)
    nodes: dict[str, Body] = {}
    global_outputs: list[Body] = []

    def add(node_name: str, template_name: str, node_type: str, parent: str | None) -> Body:
        node: Body = {
            "id": node_id(name, node_name),
            "name": node_name,
            "displayName": node_name.rsplit(".", 1)[-1] if parent else node_name,
            "type": node_type,
            "phase": phase,
            **times,
        }
        if template_name:
            node["templateName"] = template_name
        if node_type == "Pod":
            params = _outputs(templates.get(template_name, {}), outputs or {})
            node_outputs: Body = {"exitCode": "1" if failed else "0"} if done else {}
            if params:
                node_outputs["parameters"] = params
                global_outputs.extend(
                    {"name": p["globalName"], "value": p["value"]}
                    for p in params
                    if p.get("globalName")
                )
            if node_outputs:
                node["outputs"] = node_outputs
            if failed:
                node["message"] = message or "Error (exit code 1)"
        nodes[node["id"]] = node
        if parent is not None:
            nodes[node_id(name, parent)].setdefault("children", []).append(node["id"])
        return node

    add(name, spec.get("entrypoint", ""), root_type, None)
    for node_name, template_name, parent in children:
        pod = bool(template_name) and any(
            k in templates.get(template_name, {}) for k in _POD_TEMPLATES
        )
        add(
            node_name,
            template_name,
            "Pod" if pod else ("StepGroup" if not template_name else "Steps"),
            parent,
        )
    pods = [n for n in nodes.values() if n["type"] == "Pod"]
    status: Body = {
        "phase": phase,
        **times,
        "progress": f"{len(pods) if phase == 'Succeeded' else 0}/{len(pods)}",
        "nodes": nodes,
    }
    if global_outputs:
        status["outputs"] = {"parameters": global_outputs}
    if failed:
        status["message"] = message or "Error (exit code 1)"
    if done:
        status["conditions"] = [
            {"type": "PodRunning", "status": "False"},
            {"type": "Completed", "status": "True"},
        ]
    return status


def _now() -> datetime:
    return datetime.now(UTC)


class ArgoPlayer:
    """Argo's side of a test, against the test's loopback API."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    def spawn_cron_workflow(
        self,
        cron: Mapping[str, Any],
        name: str | None = None,
        scheduled_time: datetime | None = None,
    ) -> Body:
        """Create the Workflow a tick of ``cron`` creates (named as Argo names it by default)."""
        meta = cron["metadata"]
        stored = self.api.get(CRON_WORKFLOWS, meta["name"], meta.get("namespace"))
        if stored is None:
            raise LookupError(f"no CronWorkflow {meta.get('namespace')}/{meta['name']} to tick")
        return self.api.create(WORKFLOWS, cron_child(stored, scheduled_time or _now(), name))

    def start_workflow(self, wf: Mapping[str, Any], started: datetime | None = None) -> Body:
        """Mark ``wf`` Running, its pods too."""
        return self._set_status(wf, phase="Running", started=started or _now())

    def finish_workflow(
        self,
        wf: Mapping[str, Any],
        phase: str = "Succeeded",
        outputs: Mapping[str, str] | None = None,
        started: datetime | None = None,
        finished: datetime | None = None,
        message: str | None = None,
    ) -> Body:
        """Finish ``wf`` in ``phase`` (Succeeded, Failed, Error) with its pod's ``outputs``."""
        if phase not in COMPLETED:
            raise ValueError(
                f"{phase!r} is not a phase a Workflow finishes in: {sorted(COMPLETED)}"
            )
        finished = finished or _now()
        return self._set_status(
            wf,
            phase=phase,
            outputs=outputs,
            started=started or finished,
            finished=finished,
            message=message,
        )

    def collect_history(self, cron: Mapping[str, Any]) -> list[str]:
        """Delete the finished children of ``cron`` beyond its history limits; their names."""
        meta, spec = cron["metadata"], cron.get("spec") or {}
        children = self.api.list(
            WORKFLOWS, meta.get("namespace"), labels=f"{LABEL_CRON_WORKFLOW}={meta['name']}"
        )
        deleted: list[str] = []
        for phases, limit in (
            (("Succeeded",), spec.get("successfulJobsHistoryLimit", 3)),
            (("Failed", "Error"), spec.get("failedJobsHistoryLimit", 1)),
        ):
            done = [wf for wf in children if (wf.get("status") or {}).get("phase") in phases]
            done.sort(key=lambda wf: wf["status"].get("finishedAt") or "", reverse=True)
            for wf in done[limit:]:
                self.api.delete(WORKFLOWS, wf["metadata"]["name"], meta.get("namespace"))
                deleted.append(wf["metadata"]["name"])
        return deleted

    def _set_status(self, wf: Mapping[str, Any], **status: Any) -> Body:
        def change(current: Body) -> Body:
            current["status"] = workflow_status(current, **status)
            labels = current["metadata"].setdefault("labels", {})
            labels[LABEL_PHASE] = status["phase"]
            labels[LABEL_COMPLETED] = "true" if status["phase"] in COMPLETED else "false"
            return current

        return self._update(wf, change)

    def _update(self, wf: Mapping[str, Any], change: Callable[[Body], Body]) -> Body:
        meta = wf["metadata"]
        for _ in range(50):
            current = self.api.get(WORKFLOWS, meta["name"], meta.get("namespace"))
            if current is None:
                raise LookupError(f"no Workflow {meta.get('namespace')}/{meta['name']}")
            try:
                return self.api.replace(WORKFLOWS, change(current))
            except ApiError as exc:
                if exc.code != 409:
                    raise
        raise AssertionError(f"Workflow {meta['name']} kept conflicting for 50 updates")
