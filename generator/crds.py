"""The three CustomResourceDefinitions, generated from the pydantic models.

``crds/`` holds this module's output (``backup-gen crds``) and a test fails when it is stale, so
the models stay the single source of truth. Pydantic's JSON Schema is turned into a Kubernetes
*structural* schema: references inlined, ``Optional`` unwrapped, int-or-string marked,
``const`` as ``enum``; the CEL rules the models declare pass through as
``x-kubernetes-validations``. Descriptions of the embedded Kubernetes types (the Pod template)
are dropped: ``kubectl explain pod`` documents them, and they would push the CRDs past the
262 KiB annotation limit of a client-side ``kubectl apply``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from pydantic import BaseModel

from generator import models, podtemplate
from generator.models import GROUP, VERSION, BackupRun, BackupSchedule, BackupStorage, Object

__all__ = ["CATEGORY", "crd_for", "crds", "structural_schema"]

CATEGORY = "backup"
_INT_OR_STRING = frozenset({"IntOrString", "Quantity"})
#: Definitions whose descriptions are ours (the rest are Kubernetes types from hera).
_OURS = frozenset(
    name
    for module in (models, podtemplate)
    for name, value in vars(module).items()
    if isinstance(value, type)
    and issubclass(value, BaseModel)
    and value.__module__ == module.__name__
    and name != "Container"
)
_KEEP = frozenset(
    {
        "type",
        "enum",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "required",
        "x-kubernetes-validations",
        "x-kubernetes-int-or-string",
    }
)

_SCOPE = {BackupStorage: "Cluster", BackupSchedule: "Namespaced", BackupRun: "Namespaced"}
_SHORT_NAMES = {BackupStorage: ["bstore"], BackupSchedule: ["bsched"], BackupRun: ["brun"]}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_COLUMNS: dict[type[Object], list[dict[str, Any]]] = {
    BackupStorage: [
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Bucket", "type": "string", "jsonPath": ".spec.parameters.bucket"},
        {"name": "Runs", "type": "integer", "jsonPath": ".status.runs"},
        {"name": "Size", "type": "string", "jsonPath": ".status.size"},
        _AGE,
    ],
    BackupSchedule: [
        {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
        {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend"},
        {"name": "Last Success", "type": "date", "jsonPath": ".status.lastSuccessfulTime"},
        {"name": "Succeeded", "type": "integer", "jsonPath": ".status.successfulRuns"},
        {"name": "Failed", "type": "integer", "jsonPath": ".status.failedRuns"},
        _AGE,
    ],
    BackupRun: [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Path", "type": "string", "jsonPath": ".status.path"},
        {"name": "Size", "type": "string", "jsonPath": ".status.size"},
        {"name": "Storage", "type": "string", "jsonPath": ".spec.storage.name", "priority": 1},
        {"name": "Workflow", "type": "string", "jsonPath": ".status.workflow", "priority": 1},
        # A string: kubectl prints a "date" column as an age, and a future one as <invalid>.
        {
            "name": "Retain Until",
            "type": "string",
            "jsonPath": ".status.retainUntil",
            "priority": 1,
        },
        _AGE,
    ],
}


def _inline(node: Mapping[str, Any], defs: Mapping[str, Any], describe: bool) -> dict[str, Any]:
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is None and len(node.get("allOf", ())) == 1:
        ref = node.pop("allOf")[0]["$ref"]
    if ref is not None:
        name = ref.rsplit("/", 1)[-1]
        if name in _INT_OR_STRING:
            target: dict[str, Any] = {"x-kubernetes-int-or-string": True}
        else:
            target = dict(defs[name])
        own_description = node.pop("description", None)
        inner = _inline({**target, **node}, defs, describe and name in _OURS)
        if describe and own_description:
            inner["description"] = own_description
        return inner
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o != {"type": "null"}]
        types = {o.get("type") for o in options}
        if types == {"integer", "string"}:
            return _inline({**node, "x-kubernetes-int-or-string": True}, defs, describe)
        if len(options) != 1:
            raise ValueError(f"no structural form for anyOf {options}")
        return _inline({**options[0], **node}, defs, describe)
    out: dict[str, Any] = {}
    if describe and node.get("description"):
        out["description"] = node["description"]
    for key, value in node.items():
        if key in _KEEP:
            out[key] = value
        elif key == "const":
            out["enum"] = [value]
        elif key == "default" and value is not None:
            out["default"] = value
        elif key == "properties":
            out["properties"] = {k: _inline(v, defs, describe) for k, v in value.items()}
        elif key == "items":
            out["items"] = _inline(value, defs, describe)
        elif key == "additionalProperties" and isinstance(value, dict):
            out["additionalProperties"] = _inline(value, defs, describe)
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The Kubernetes structural schema of a model (references inlined)."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    return _inline(schema, defs, describe=True)


def crd_for(kind: type[Object]) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    plural = kind.kind.lower() + "s"
    fields = kind.model_fields
    spec_model = cast(type[BaseModel], fields["spec"].annotation)
    status_model = next(
        a for a in getattr(fields["status"].annotation, "__args__", ()) if a is not type(None)
    )
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": _SCOPE[kind],
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": plural,
                "singular": kind.kind.lower(),
                "shortNames": _SHORT_NAMES[kind],
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _COLUMNS[kind],
                    "schema": {
                        "openAPIV3Schema": {
                            "description": (kind.__doc__ or "").strip(),
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": structural_schema(spec_model),
                                "status": structural_schema(status_model),
                            },
                        }
                    },
                }
            ],
        },
    }


def crds() -> list[dict[str, Any]]:
    """The CRDs of every kind, storage first (runs and schedules refer to it)."""
    return [crd_for(kind) for kind in (BackupStorage, BackupSchedule, BackupRun)]
