"""Label and field selectors of the emulated API, as a real server reads them."""

from __future__ import annotations

import pytest

from tests.controller.selectors import FieldSelector, LabelSelector

LABELS = {"a": "b", "e": "x", "g": "", "n": "7"}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        pytest.param("", LABELS, True, id="empty-matches-all"),
        pytest.param("a=b", LABELS, True, id="equals"),
        pytest.param("a==b", LABELS, True, id="double-equals"),
        pytest.param("a=c", LABELS, False, id="equals-other-value"),
        pytest.param("c!=d", LABELS, True, id="not-equals-absent-key"),
        pytest.param("a!=b", LABELS, False, id="not-equals-same-value"),
        pytest.param("e in (x,y)", LABELS, True, id="in"),
        pytest.param("e in (y, z)", LABELS, False, id="in-other-values"),
        pytest.param("q in (x)", LABELS, False, id="in-absent-key"),
        pytest.param("e notin (y,z)", LABELS, True, id="notin"),
        pytest.param("q notin (y)", LABELS, True, id="notin-absent-key"),
        pytest.param("e notin (x)", LABELS, False, id="notin-same-value"),
        pytest.param("!f", LABELS, True, id="does-not-exist"),
        pytest.param("!a", LABELS, False, id="does-not-exist-but-does"),
        pytest.param("g", LABELS, True, id="exists-empty-value"),
        pytest.param("f", LABELS, False, id="exists-absent"),
        pytest.param("n>5", LABELS, True, id="greater"),
        pytest.param("n<5", LABELS, False, id="less"),
        pytest.param("a>5", LABELS, False, id="greater-not-a-number"),
        pytest.param("a=b,c!=d,e in (x,y),!f,g", LABELS, True, id="all-together"),
        pytest.param("a=b,c!=d,e in (x,y),!f,h", LABELS, False, id="all-but-one"),
        pytest.param(
            "app.kubernetes.io/name=x", {"app.kubernetes.io/name": "x"}, True, id="prefixed-key"
        ),
        pytest.param("a=b", None, False, id="no-labels"),
        pytest.param("!a", None, True, id="no-labels-does-not-exist"),
    ],
)
def test_label_selector(selector: str, labels: dict[str, str] | None, expected: bool) -> None:
    assert LabelSelector.parse(selector).matches(labels) is expected


@pytest.mark.parametrize(
    "selector",
    [
        pytest.param("a in (x", id="unbalanced"),
        pytest.param("a=b=c", id="two-equals"),
        pytest.param("a in x", id="in-without-parentheses"),
        pytest.param("=b", id="no-key"),
    ],
)
def test_label_selector_rejects(selector: str) -> None:
    with pytest.raises(ValueError, match="selector"):
        LabelSelector.parse(selector)


OBJECT = {"metadata": {"name": "r1", "namespace": "team"}, "status": {"phase": "Running"}}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("", True, id="empty"),
        pytest.param("metadata.name=r1", True, id="name"),
        pytest.param("metadata.name==r1", True, id="name-double-equals"),
        pytest.param("metadata.name=r2", False, id="other-name"),
        pytest.param("metadata.namespace!=team", False, id="not-namespace"),
        pytest.param("metadata.namespace=team,metadata.name=r1", True, id="both"),
        pytest.param("status.phase=Running", True, id="nested-field"),
        pytest.param("status.missing=", True, id="missing-reads-empty"),
        pytest.param("status.missing!=", False, id="missing-not-empty"),
    ],
)
def test_field_selector(selector: str, expected: bool) -> None:
    assert FieldSelector.parse(selector).matches(OBJECT) is expected


def test_field_selector_rejects() -> None:
    with pytest.raises(ValueError, match="field selector"):
        FieldSelector.parse("metadata.name")
