"""YAML in and out, at the edge only, with a stable key order.

Everything inside the generator is typed models; text exists only here. Output is deterministic:
mapping keys in a fixed order (identity keys first, then alphabetical), multi-line strings as
literal blocks, so the same objects always give byte-identical YAML.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from generator.errors import InputError

__all__ = ["dump_documents", "load_documents"]

#: Keys that identify an object or an item read best first; the rest follow alphabetically.
_FIRST = ("apiVersion", "kind", "name", "namespace", "metadata", "key")


def load_documents(text: str, origin: str) -> list[tuple[str, dict[str, Any]]]:
    """The non-empty documents of a multi-document YAML text, each labelled ``origin#index``."""
    try:
        raw = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise InputError(f"{origin}: not valid YAML: {_where(exc)}") from None
    docs: list[tuple[str, dict[str, Any]]] = []
    for i, doc in enumerate(raw):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise InputError(
                f"{origin}#{i}: expected a Kubernetes object, got {type(doc).__name__}"
            )
        docs.append((f"{origin}#{i}", doc))
    return docs


def _where(exc: yaml.YAMLError) -> str:
    """What and where, without PyYAML's excerpt of the line: it may hold a secret value."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return str(exc)
    parts = []
    for text, mark in ((exc.context, exc.context_mark), (exc.problem, exc.problem_mark)):
        if text:
            parts.append(
                f"{text} (line {mark.line + 1}, column {mark.column + 1})" if mark else text
            )
    return "; ".join(parts)


def _order(key: object) -> tuple[int, str]:
    text = str(key)
    return (_FIRST.index(text), "") if text in _FIRST else (len(_FIRST), text)


class _Dumper(yaml.SafeDumper):
    pass


def _mapping(dumper: yaml.SafeDumper, data: Mapping[Any, Any]) -> yaml.Node:
    items = sorted(data.items(), key=lambda kv: _order(kv[0]))
    return dumper.represent_mapping("tag:yaml.org,2002:map", items)


def _string(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(dict, _mapping)
_Dumper.add_representer(str, _string)


def dump_documents(docs: Iterable[Mapping[str, Any]]) -> str:
    """Documents as one multi-document YAML text, each starting with ``---``."""
    return "".join(
        "---\n" + yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, width=100) for doc in docs
    )
