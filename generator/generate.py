"""The generator's three jobs as text in, text out: what ``backup-gen`` and tests call.

- :func:`validate_texts`: YAML documents → checked API objects (or every problem found);
- :func:`render_texts`: YAML documents → Argo objects as YAML;
- :func:`crd_texts`: the CRDs, one YAML file each (the content of ``crds/``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from generator.checks import validate_documents
from generator.crds import crds
from generator.models import Object
from generator.render import ArgoObject, RenderOptions, render_objects
from generator.yamlio import dump_documents, load_documents

__all__ = ["argo_dict", "crd_texts", "render_texts", "validate_texts"]


def _documents(texts: Iterable[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
    return [doc for origin, text in texts for doc in load_documents(text, origin)]


def validate_texts(texts: Iterable[tuple[str, str]]) -> list[Object]:
    """The API objects in ``(origin, yaml)`` texts; ValidationFailed lists every problem."""
    return [obj for _, obj in validate_documents(_documents(texts))]


def argo_dict(obj: ArgoObject) -> dict[str, Any]:
    """An Argo object as plain data, the way the API server and ``validate-argo`` see it."""
    return obj.model_dump(by_alias=True, exclude_none=True, mode="json")


def render_texts(texts: Iterable[tuple[str, str]], options: RenderOptions) -> str:
    """The Argo objects of the API objects in ``(origin, yaml)`` texts, as one YAML stream."""
    objects = validate_texts(texts)
    return dump_documents(argo_dict(o) for o in render_objects(objects, options))


def crd_texts() -> dict[str, str]:
    """File name → YAML of each CustomResourceDefinition."""
    return {f"{crd['metadata']['name']}.yaml": dump_documents([crd]) for crd in crds()}
