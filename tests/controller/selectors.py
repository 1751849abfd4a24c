"""Label and field selectors as the Kubernetes API reads them, for the emulated API server.

``LabelSelector.parse("app=web,tier!=db,env in (prod,stage),!legacy,owner")`` understands the
grammar of ``k8s.io/apimachinery/pkg/labels``: ``=``/``==``, ``!=``, ``in``, ``notin``, bare
keys (exists), ``!key`` (does not exist) and ``>``/``<`` on integers. As on a real server,
``!=`` and ``notin`` also match objects without the label.

``FieldSelector.parse("metadata.name=x,metadata.namespace!=y")`` compares dotted paths of the
object with ``=``/``==``/``!=``; a missing field reads as the empty string. A real server
accepts only ``metadata.name``, ``metadata.namespace`` and a few per-kind fields; this one
accepts any path, which is a superset.

A malformed selector raises :class:`ValueError` with a message naming the bad part.
:class:`Query` puts both together with the namespace and name of a list or watch request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FieldSelector", "LabelSelector", "Query"]

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_SET_RE = re.compile(rf"\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*")
_EQ_RE = re.compile(rf"\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*")
_CMP_RE = re.compile(rf"\s*(?P<key>{_KEY})\s*(?P<op>[<>])\s*(?P<value>-?[0-9]+)\s*")
_EXISTS_RE = re.compile(rf"\s*(?P<neg>!?)\s*(?P<key>{_KEY})\s*")
_FIELD_RE = re.compile(r"\s*(?P<path>[A-Za-z0-9_.]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^,]*?)\s*")

Labels = Mapping[str, str]


def _split(text: str) -> list[str]:
    """Split at the commas that are not inside the parentheses of ``in (a,b)``."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise ValueError(f"unbalanced parentheses in the selector {text!r}")
    parts.append(current)
    return [part for part in parts if part.strip()]


def _greater(a: int, b: int) -> bool:
    return a > b


def _less(a: int, b: int) -> bool:
    return a < b


@dataclass(frozen=True)
class _Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists", ">", "<"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Labels) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        compare: Callable[[int, int], bool] = _greater if self.op == ">" else _less
        try:
            return present and compare(int(str(value)), int(next(iter(self.values))))
        except ValueError:
            return False


def _requirement(part: str) -> _Requirement:
    if match := _SET_RE.fullmatch(part):
        values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
        return _Requirement(match["key"], match["op"], values)
    if match := _EQ_RE.fullmatch(part):
        op = "notin" if match["op"] == "!=" else "in"
        return _Requirement(match["key"], op, frozenset({match["value"]}))
    if match := _CMP_RE.fullmatch(part):
        return _Requirement(match["key"], match["op"], frozenset({match["value"]}))
    if match := _EXISTS_RE.fullmatch(part):
        return _Requirement(match["key"], "!exists" if match["neg"] else "exists")
    raise ValueError(f"unable to parse the requirement {part.strip()!r} of a label selector")


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of label requirements; the empty selector matches everything."""

    requirements: tuple[_Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        return cls(tuple(_requirement(part) for part in _split(text or "")))

    def matches(self, labels: Labels | None) -> bool:
        return all(req.matches(labels or {}) for req in self.requirements)

    def matches_object(self, body: Mapping[str, Any]) -> bool:
        return self.matches((body.get("metadata") or {}).get("labels"))


def _field(body: Mapping[str, Any], path: str) -> str:
    value: Any = body
    for step in path.split("."):
        if not isinstance(value, Mapping) or step not in value:
            return ""
        value = value[step]
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of ``path=value`` / ``path!=value`` terms on an object's fields."""

    terms: tuple[tuple[str, bool, str], ...] = ()  # (path, equal?, value)

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        terms = []
        for part in _split(text or ""):
            match = _FIELD_RE.fullmatch(part)
            if match is None:
                raise ValueError(f"unable to parse the term {part.strip()!r} of a field selector")
            terms.append((match["path"], match["op"] != "!=", match["value"]))
        return cls(tuple(terms))

    def matches(self, body: Mapping[str, Any]) -> bool:
        return all((_field(body, path) == value) is equal for path, equal, value in self.terms)


@dataclass(frozen=True)
class Query:
    """Which objects of a resource a list or a watch wants."""

    namespace: str | None = None
    name: str | None = None
    labels: LabelSelector = field(default_factory=LabelSelector)
    fields: FieldSelector = field(default_factory=FieldSelector)

    def matches(self, body: Mapping[str, Any]) -> bool:
        meta = body.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.name is not None and meta.get("name") != self.name:
            return False
        return self.labels.matches_object(body) and self.fields.matches(body)
