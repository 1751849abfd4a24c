"""How the emulated API server folds a write into an object: apply, merge patch, JSON patch.

Server-side apply is simplified, and the simplification is the whole contract here:

- each field manager's last applied configuration is remembered; fields it applied before and
  leaves out now are removed from the object (so dropping a label from the applied
  configuration drops the label), whoever else may also have set them;
- maps merge recursively; lists are atomic (replaced whole), except the two associative
  lists every kind shares: ``metadata.finalizers`` (a set) and ``metadata.ownerReferences``
  (keyed by ``uid``), whose items are merged and removed one by one;
- ``force`` is implied: two managers never conflict, the later write wins;
- no ``managedFields`` are written into the object.

JSON merge patch (RFC 7386) and JSON patch (RFC 6902) are kmock's own implementations; a
patch that cannot be applied raises :class:`PatchError`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jsonpatch
from kmock._internal import dicts

__all__ = ["PatchError", "apply_config", "json_patch", "merge_patch"]

Body = dict[str, Any]
Path = tuple[str, ...]

#: Associative lists of every kind: path -> the key of an item (None: the item is its own key).
_ASSOCIATIVE: dict[Path, str | None] = {
    ("metadata", "finalizers"): None,
    ("metadata", "ownerReferences"): "uid",
}
#: The identity of the object: never removed by an apply that leaves it out.
_IDENTITY: frozenset[Path] = frozenset(
    {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}
)


class PatchError(ValueError):
    """A patch that cannot be applied to the object (the server answers 422)."""


def merge_patch(live: Mapping[str, Any], patch: Any) -> Body:
    if not isinstance(patch, Mapping):
        raise PatchError("a merge patch must be a JSON object")
    try:
        return copy.deepcopy(dict(dicts.merge_patch_dict(live, patch)))
    except ValueError as exc:
        raise PatchError(str(exc)) from exc


def json_patch(live: Mapping[str, Any], ops: Any) -> Body:
    if not isinstance(ops, Sequence) or isinstance(ops, str | bytes):
        raise PatchError("a JSON patch must be a JSON array of operations")
    try:
        return copy.deepcopy(dict(dicts.json_patch_dict(live, ops)))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise PatchError(f"the JSON patch cannot be applied: {exc}") from exc


def _item_key(path: Path, item: Any) -> str:
    key = _ASSOCIATIVE[path]
    if key is None:
        return str(item)
    return str(item.get(key)) if isinstance(item, Mapping) else repr(item)


def _owned(config: Mapping[str, Any], prefix: Path = ()) -> Iterator[Path]:
    """Every leaf a configuration sets: map keys recursively, associative items one by one."""
    for key, value in config.items():
        path = (*prefix, key)
        if path in _ASSOCIATIVE and isinstance(value, list):
            for item in value:
                yield (*path, _item_key(path, item))
        elif isinstance(value, Mapping) and value:
            yield from _owned(value, path)
        else:
            yield path


def _get(body: Any, path: Path) -> Any:
    value = body
    for step in path:
        if not isinstance(value, dict) or step not in value:
            return None
        value = value[step]
    return value


def _remove(body: Body, path: Path) -> None:
    list_path = path[:-1]
    if list_path in _ASSOCIATIVE:
        items = _get(body, list_path)
        if isinstance(items, list):
            items[:] = [item for item in items if _item_key(list_path, item) != path[-1]]
        return
    parent = _get(body, list_path)
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def _merge(live: Any, applied: Any, path: Path) -> Any:
    if path in _ASSOCIATIVE and isinstance(live, list) and isinstance(applied, list):
        keys = {_item_key(path, item): item for item in applied}
        merged = [keys.pop(_item_key(path, item), item) for item in live]
        return merged + [item for item in applied if _item_key(path, item) in keys]
    if isinstance(live, Mapping) and isinstance(applied, Mapping):
        result = dict(live)
        for key, value in applied.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = _merge(live.get(key), value, (*path, key))
        return result
    return applied


def apply_config(
    live: Mapping[str, Any], previous: Mapping[str, Any] | None, applied: Mapping[str, Any]
) -> Body:
    """The object after ``applied`` is applied over ``live`` by a manager that last applied
    ``previous`` (None for its first apply)."""
    result: Body = copy.deepcopy(dict(live))
    if previous is not None:
        dropped = set(_owned(previous)) - set(_owned(applied)) - _IDENTITY
        for path in sorted(dropped, key=len, reverse=True):
            _remove(result, path)
    merged: Body = _merge(result, copy.deepcopy(dict(applied)), ())
    return merged
