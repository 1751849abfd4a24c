"""How the emulated API folds writes into objects: simplified server-side apply, patches."""

from __future__ import annotations

from typing import Any

import pytest

from tests.controller.merging import PatchError, apply_config, json_patch, merge_patch

LIVE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "x",
        "labels": {"kept": "1", "theirs": "2"},
        "finalizers": ["theirs/f"],
        "ownerReferences": [{"uid": "u1", "name": "one"}],
    },
    "data": {"a": "1", "b": "2"},
    "list": [1, 2],
}


def test_apply_merges_maps_and_replaces_lists() -> None:
    applied = {"metadata": {"name": "x", "labels": {"mine": "3"}}, "data": {"b": "20"}, "list": [3]}
    result = apply_config(LIVE, None, applied)
    assert result["metadata"]["labels"] == {"kept": "1", "theirs": "2", "mine": "3"}
    assert result["data"] == {"a": "1", "b": "20"}
    assert result["list"] == [3]
    assert LIVE["list"] == [1, 2], "the live object is not changed in place"


def test_apply_removes_what_the_manager_stopped_applying() -> None:
    before = {"metadata": {"name": "x", "labels": {"mine": "3", "gone": "4"}}, "data": {"c": "5"}}
    live = apply_config(LIVE, None, before)
    now = {"metadata": {"name": "x", "labels": {"mine": "3"}}}
    result = apply_config(live, before, now)
    assert result["metadata"]["labels"] == {"kept": "1", "theirs": "2", "mine": "3"}
    assert result["data"] == {"a": "1", "b": "2"}, "data.c went, the other keys stayed"
    assert result["metadata"]["name"] == "x"


def test_apply_keeps_the_identity_it_leaves_out() -> None:
    before = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x"},
        "data": {"a": "1"},
    }
    result = apply_config(LIVE, before, {"data": {"a": "1"}})
    assert (result["apiVersion"], result["kind"], result["metadata"]["name"]) == (
        "v1",
        "ConfigMap",
        "x",
    )


def test_apply_merges_finalizers_and_owner_references_item_by_item() -> None:
    before = {
        "metadata": {
            "finalizers": ["mine/f", "mine/old"],
            "ownerReferences": [{"uid": "u2", "name": "two"}, {"uid": "u3", "name": "three"}],
        }
    }
    live = apply_config(LIVE, None, before)
    assert live["metadata"]["finalizers"] == ["theirs/f", "mine/f", "mine/old"]
    now = {
        "metadata": {
            "finalizers": ["mine/f"],
            "ownerReferences": [{"uid": "u2", "name": "two-renamed"}],
        }
    }
    result = apply_config(live, before, now)
    assert result["metadata"]["finalizers"] == ["theirs/f", "mine/f"]
    assert result["metadata"]["ownerReferences"] == [
        {"uid": "u1", "name": "one"},
        {"uid": "u2", "name": "two-renamed"},
    ]


def test_apply_null_removes_a_key() -> None:
    assert "a" not in apply_config(LIVE, None, {"data": {"a": None}})["data"]


def test_merge_patch_is_rfc_7386() -> None:
    result = merge_patch(LIVE, {"data": {"a": None, "c": "3"}, "list": [9]})
    assert result["data"] == {"b": "2", "c": "3"}
    assert result["list"] == [9]


def test_merge_patch_needs_an_object() -> None:
    with pytest.raises(PatchError, match="JSON object"):
        merge_patch(LIVE, [{"op": "remove", "path": "/data"}])


def test_json_patch_and_its_test_operation() -> None:
    ops = [
        {"op": "test", "path": "/data/a", "value": "1"},
        {"op": "replace", "path": "/data/a", "value": "9"},
    ]
    assert json_patch(LIVE, ops)["data"]["a"] == "9"
    with pytest.raises(PatchError, match="cannot be applied"):
        json_patch(LIVE, [{"op": "test", "path": "/data/a", "value": "2"}])
    with pytest.raises(PatchError, match="JSON array"):
        json_patch(LIVE, {"data": {}})
