"""The resources the controller's loopback API serves: ours (from ``crds/``), Argo's, built-ins.

kopf starts no watcher until the API serves ``customresourcedefinitions``, and discovers every
resource it watches from the declared ``verbs`` and subresources; our CRDs are read from the
manifests users install, so the emulated API serves exactly what a cluster would (scope, kind,
short names, the ``status`` subresource), and their CustomResourceDefinition objects exist.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import kmock
import yaml

from tests.controller.emulator import Emulator

__all__ = ["CRDS", "declare_all", "our_crds"]

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"

# (resource, kind, namespaced, subresources, short names)
BUILTINS: tuple[tuple[str, str, bool, tuple[str, ...], tuple[str, ...]], ...] = (
    ("v1/namespaces", "Namespace", False, ("status",), ("ns",)),
    ("v1/secrets", "Secret", True, (), ()),
    ("v1/configmaps", "ConfigMap", True, (), ("cm",)),
    ("v1/serviceaccounts", "ServiceAccount", True, (), ("sa",)),
    ("v1/events", "Event", True, (), ("ev",)),
    ("events.k8s.io/v1/events", "Event", True, (), ("ev",)),
    ("rbac.authorization.k8s.io/v1/roles", "Role", True, (), ()),
    ("rbac.authorization.k8s.io/v1/rolebindings", "RoleBinding", True, (), ()),
    ("coordination.k8s.io/v1/leases", "Lease", True, (), ()),
    (CRDS, "CustomResourceDefinition", False, ("status",), ("crd", "crds")),
    # Argo's CRDs declare no status subresource: its controller updates a Workflow whole.
    ("argoproj.io/v1alpha1/workflows", "Workflow", True, (), ("wf",)),
    ("argoproj.io/v1alpha1/cronworkflows", "CronWorkflow", True, (), ("cwf", "cronwf")),
    ("argoproj.io/v1alpha1/workflowtemplates", "WorkflowTemplate", True, (), ("wftmpl",)),
)


@functools.cache
def our_crds() -> tuple[dict[str, Any], ...]:
    """The CustomResourceDefinitions of ``crds/``, as users apply them."""
    return tuple(
        doc
        for path in sorted(CRD_DIR.glob("*.yaml"))
        for doc in yaml.load_all(path.read_text(), Loader=_LOADER)
        if doc and doc.get("kind") == "CustomResourceDefinition"
    )


def declare_all(emulator: Emulator) -> None:
    """Declare every resource, and create our CRDs' objects (on the server's event loop)."""
    for resource, kind, namespaced, subresources, short_names in BUILTINS:
        emulator.declare(
            resource,
            kind=kind,
            namespaced=namespaced,
            subresources=subresources,
            short_names=short_names,
        )
    for crd in our_crds():
        spec = crd["spec"]
        names = spec["names"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            emulator.declare(
                f"{spec['group']}/{version['name']}/{names['plural']}",
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                subresources=(version.get("subresources") or {}).keys(),
                short_names=names.get("shortNames", ()),
                singular=names.get("singular"),
            )
    for crd in our_crds():
        emulator.store.create(kmock.resource(CRDS), None, crd)
