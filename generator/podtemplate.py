"""The Pod template a BackupRun carries, typed with the Kubernetes models hera ships.

The run's Pod is built from it, so every field kept here must have a place in the Argo objects
(see :mod:`generator.render.pod`); a field Kubernetes has but this model lacks is rejected
by name instead of being dropped in silence. Two adjustments to hera's models: a quantity may be
written as a number (``cpu: 1``), and container names are bounded DNS labels so the CRD's CEL
rules have a bounded cost.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import hera.workflows.models.io.k8s.api.core.v1 as k8s
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "DNS_LABEL",
    "MAX_CONTAINERS",
    "RESERVED_CONTAINER_NAMES",
    "Container",
    "PodMetadata",
    "PodSpec",
    "PodTemplate",
    "unknown_fields",
]

#: A Kubernetes DNS-1123 label: container, volume and port names.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
#: Bounds the list so the CRD's CEL rules over containers have a bounded cost.
MAX_CONTAINERS = 32
#: Argo names the containers of a workflow Pod ``main``, ``wait`` and ``init``.
RESERVED_CONTAINER_NAMES = ("main", "wait", "init")

#: The reserved names as a CEL list literal.
_RESERVED = "[" + ", ".join(f"'{n}'" for n in RESERVED_CONTAINER_NAMES) + "]"
_QUANTITY_MAPS = ("limits", "requests")


def _quantity(value: Any) -> Any:
    """``cpu: 1`` and ``sizeLimit: 1.5`` are valid quantities; hera's Quantity takes strings."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _quantities_as_strings(data: Any) -> Any:
    if isinstance(data, dict):
        resources = data.get("resources")
        if isinstance(resources, dict):
            data = {**data, "resources": {**resources}}
            for key in _QUANTITY_MAPS:
                values = resources.get(key)
                if isinstance(values, dict):
                    data["resources"][key] = {k: _quantity(v) for k, v in values.items()}
    return data


def _size_limit_as_string(volume: Any) -> Any:
    empty_dir = volume.get("emptyDir") if isinstance(volume, dict) else None
    if isinstance(empty_dir, dict) and "sizeLimit" in empty_dir:
        return {**volume, "emptyDir": {**empty_dir, "sizeLimit": _quantity(empty_dir["sizeLimit"])}}
    return volume


class Container(k8s.Container):
    """A container of the Pod template (hera's model, with a bounded DNS-label name)."""

    name: Annotated[str, Field(max_length=63, pattern=DNS_LABEL)]

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_quantities(cls, data: Any) -> Any:
        return _quantities_as_strings(data)


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class PodMetadata(_Model):
    """Labels and annotations for the run's Pod."""

    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class PodSpec(_Model):
    """The subset of a Kubernetes PodSpec that a run's Pod can carry over.

    Every container runs beside the streamer as an Argo sidecar, so each needs a ``command``
    that keeps it running (``sleep 1d``); the streamer execs into the action's container.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.containers.all(c, has(c.command) && size(c.command) > 0)",
                    "message": "every container needs a command that keeps it running, "
                    'e.g. ["sleep", "1d"]',
                },
                {
                    "rule": f"self.containers.all(c, !(c.name in {_RESERVED}))"
                    " && (!has(self.initContainers)"
                    f" || self.initContainers.all(c, !(c.name in {_RESERVED})))",
                    "message": "container names "
                    + ", ".join(RESERVED_CONTAINER_NAMES)
                    + " are reserved by Argo",
                },
            ]
        }
    )

    containers: Annotated[list[Container], Field(min_length=1, max_length=MAX_CONTAINERS)]
    init_containers: Annotated[list[Container], Field(max_length=MAX_CONTAINERS)] | None = None
    volumes: list[k8s.Volume] | None = None
    restart_policy: Literal["Never"] | None = Field(
        default=None,
        description="The run's Pod is never restarted in place; retries belong to Argo.",
    )
    termination_grace_period_seconds: Annotated[int, Field(ge=0)] | None = None
    active_deadline_seconds: Annotated[int, Field(ge=1)] | None = None
    node_selector: dict[str, str] | None = None
    node_name: str | None = None
    affinity: k8s.Affinity | None = None
    tolerations: list[k8s.Toleration] | None = None
    security_context: k8s.PodSecurityContext | None = None
    image_pull_secrets: list[k8s.LocalObjectReference] | None = None
    service_account_name: str | None = None
    automount_service_account_token: bool | None = None
    priority_class_name: str | None = None
    priority: int | None = None
    preemption_policy: Literal["Never", "PreemptLowerPriority"] | None = None
    scheduler_name: str | None = None
    runtime_class_name: str | None = None
    host_aliases: list[k8s.HostAlias] | None = None
    dns_policy: Literal["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"] | None = None
    dns_config: k8s.PodDNSConfig | None = None
    hostname: str | None = None
    subdomain: str | None = None
    host_network: bool | None = None
    host_pid: bool | None = Field(default=None, alias="hostPID")
    host_ipc: bool | None = Field(default=None, alias="hostIPC")
    share_process_namespace: bool | None = None
    enable_service_links: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_sizes(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("volumes"), list):
            data = {**data, "volumes": [_size_limit_as_string(v) for v in data["volumes"]]}
        return data

    @model_validator(mode="wrap")
    @classmethod
    def _no_unknown_fields(cls, data: Any, handler: Any) -> Any:
        spec = handler(data)
        if isinstance(data, dict):
            unknown = unknown_fields(data, spec)
            if unknown:
                raise ValueError(
                    "unknown field(s) "
                    + ", ".join(unknown)
                    + "; a run's Pod carries the Kubernetes PodSpec fields listed in "
                    "`kubectl explain backupruns.spec.template.spec`"
                )
        return spec


class PodTemplate(_Model):
    """Pod metadata and spec, as in a Deployment's ``template``."""

    metadata: PodMetadata | None = None
    spec: PodSpec


def unknown_fields(raw: dict[str, Any], parsed: BaseModel) -> list[str]:
    """Keys of ``raw`` that ``parsed`` did not keep, as dotted paths (hera's models ignore them)."""
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return list(_missing(raw, kept, ""))


def _missing(raw: Any, kept: Any, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(raw, dict) and isinstance(kept, dict):
        for key, value in raw.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in kept:
                found.append(where)
            else:
                found.extend(_missing(value, kept[key], where))
    elif isinstance(raw, list) and isinstance(kept, list):
        for i, (a, b) in enumerate(zip(raw, kept, strict=False)):
            found.extend(_missing(a, b, f"{path}[{i}]"))
    return found
