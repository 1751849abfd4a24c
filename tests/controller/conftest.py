"""Fixtures of the controller's tests: the loopback Kubernetes API, and Argo played by the test.

``kube_api`` is a :class:`~tests.controller.kubeapi.KubeApi`: kmock's KubernetesEmulator,
extended (:mod:`tests.controller.emulator`), serving our CRDs, Argo's and the built-ins the
controller uses on 127.0.0.1 and a free port, from a thread of its own; ``kube_api.kubeconfig``
points a subprocess (``KUBECONFIG=...``) or the official client at it. A defect of the emulator
during the test fails the test at teardown.

``argo`` is an :class:`~tests.controller.argo.ArgoPlayer` on that API: it ticks CronWorkflows
and finishes Workflows the way Argo's controller would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.argo import ArgoPlayer
from tests.controller.kubeapi import KubeApi, running_kube_api


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[KubeApi]:
    with running_kube_api(tmp_path / "kubeconfig") as api:
        yield api
        failures = api.failures
    assert not failures, f"the emulated API server failed during the test: {failures!r}"


@pytest.fixture
def argo(kube_api: KubeApi) -> ArgoPlayer:
    return ArgoPlayer(kube_api)
