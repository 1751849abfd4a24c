"""The copies of a BackupStorage's credentials Secret in the namespaces that use it.

Runs read the storage's keys as ``secretKeyRef`` env, which reaches only Secrets in their own
namespace; the Secret a storage names may live anywhere (``minio/minio-credentials``). So the
controller keeps one copy, :func:`~generator.controller.names.copied_secret_name`, in every
namespace whose schedules or runs use the storage, owned by the BackupStorage (deleting it
collects them) and labelled with it. Only ``type`` and ``data`` are copied: the source's own
labels, annotations and owners stay with it.

Where copies exist is recorded in the storage's ``status.credentialsNamespaces`` *before* a new
one is made, and forgotten only after it is deleted, so a restart between the two never leaves a
copy that nothing will delete.

Secret values travel in exactly one place, the ``data`` of the copy's :class:`Apply`, each as a
:class:`Concealed` string whose ``repr`` hides it, so a plan or an action in a log line or an
assertion message shows ``<concealed>``. :func:`scrub` takes them out of any text that might
have picked one up (a storage endpoint's error message).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from generator.controller.names import (
    LABEL_CREDENTIALS_OF,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    copied_secret_name,
)
from generator.controller.objects import parse_storage
from generator.controller.plan import Action, Apply, Body, Delete, ObjectRef
from generator.models import API_VERSION, BackupStorage

__all__ = [
    "REDACTED",
    "Concealed",
    "CopyPlan",
    "copy_secret",
    "plan_copies",
    "scrub",
    "secret_values",
]

#: What :func:`scrub` puts where a secret value was.
REDACTED = "[redacted]"


class Concealed(str):
    """A Secret value: an ordinary string to the API client, ``<concealed>`` to ``repr``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<concealed>'"


def owner_reference(storage: Mapping[str, Any]) -> dict[str, Any]:
    """The owner reference of a copy: the BackupStorage (cluster-scoped owners may own
    namespaced objects)."""
    meta = storage.get("metadata") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": BackupStorage.kind,
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def copy_secret(source: Mapping[str, Any], *, storage: Mapping[str, Any], namespace: str) -> Body:
    """The copy of ``source`` in ``namespace``, as a whole object to apply."""
    storage_name = str((storage.get("metadata") or {}).get("name", ""))
    data = source.get("data") or {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": copied_secret_name(storage_name),
            "namespace": namespace,
            "labels": {LABEL_CREDENTIALS_OF: storage_name, LABEL_MANAGED_BY: MANAGED_BY},
            "ownerReferences": [owner_reference(storage)],
        },
        "type": str(source.get("type") or "Opaque"),
        "data": {str(key): Concealed(value) for key, value in sorted(data.items())},
    }


def secret_values(secret: Mapping[str, Any] | None) -> list[str]:
    """Every value of a Secret as stored (base64) and decoded, longest first."""
    if secret is None:
        return []
    values: set[str] = set()
    for raw in (secret.get("data") or {}).values():
        if not isinstance(raw, str) or not raw:
            continue
        values.add(raw)
        try:
            plain = base64.b64decode(raw, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
        if plain.strip():
            values.add(plain)
            values.add(plain.strip())
    for plain in (secret.get("stringData") or {}).values():
        if isinstance(plain, str) and plain.strip():
            values.add(plain)
    return sorted(values, key=lambda v: (-len(v), v))


def scrub(text: str, secret: Mapping[str, Any] | None) -> str:
    """``text`` with every value of ``secret`` replaced by :data:`REDACTED`."""
    for value in secret_values(secret):
        text = text.replace(value, REDACTED)
    return text


@dataclass(frozen=True)
class CopyPlan:
    """The copies to make and delete, and the namespaces to record around them."""

    #: Record these namespaces before ``actions`` (None: nothing new to record first).
    record_first: tuple[str, ...] | None
    actions: tuple[Action, ...]
    #: The namespaces holding a copy once ``actions`` are done.
    recorded: tuple[str, ...]


def plan_copies(
    storage: Mapping[str, Any],
    *,
    source: Mapping[str, Any] | None,
    wanted: Iterable[str],
    recorded: Sequence[str],
) -> CopyPlan:
    """Copies in the ``wanted`` namespaces, none in the others that ``recorded`` lists.

    Without a ``source`` (the Secret is missing) no copy is made or refreshed; those that
    exist in wanted namespaces stay, so runs keep working until it is back. The source itself
    is never a copy: a Secret already named like the copy in its own namespace is left alone.
    """
    model = parse_storage(storage)
    name = copied_secret_name(model.metadata.name)
    origin = model.spec.credentials

    def is_source(namespace: str) -> bool:
        return namespace == origin.namespace and name == origin.name

    want = sorted({ns for ns in wanted if not is_source(ns)})
    had = sorted({ns for ns in recorded if not is_source(ns)})
    keep = want if source is not None else [ns for ns in want if ns in had]
    new = [ns for ns in keep if ns not in had]
    record_first = tuple(sorted({*had, *keep})) if new else None
    actions: list[Action] = []
    if source is not None:
        actions += [Apply(copy_secret(source, storage=storage, namespace=ns)) for ns in keep]
    actions += [
        Delete(ObjectRef("v1", "Secret", name, namespace=ns)) for ns in had if ns not in keep
    ]
    return CopyPlan(record_first, tuple(actions), tuple(keep))
