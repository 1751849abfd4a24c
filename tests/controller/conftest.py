"""Fixtures of the controller's tests: the loopback Kubernetes API, and Argo played by the test.

``kube_api`` is a :class:`~tests.controller.kubeapi.KubeApi`: kmock's KubernetesEmulator,
extended (:mod:`tests.controller.emulator`), serving our CRDs, Argo's and the built-ins the
controller uses on 127.0.0.1 and a free port, from a thread of its own; ``kube_api.kubeconfig``
points a subprocess (``KUBECONFIG=...``) or the official client at it. A defect of the emulator
during the test fails the test at teardown.

``argo`` is an :class:`~tests.controller.argo.ArgoPlayer` on that API: it ticks CronWorkflows
and finishes Workflows the way Argo's controller would.

``controllers`` starts (and kills, and restarts) the real ``backup-gen controller`` process on
that API (:class:`~tests.controller.process.Controllers`); ``controller`` is one started for
the test. Every process is stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.argo import ArgoPlayer
from tests.controller.kubeapi import KubeApi, running_kube_api
from tests.controller.process import Controller, Controllers, running_controllers


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[KubeApi]:
    with running_kube_api(tmp_path / "kubeconfig") as api:
        yield api
        failures = api.failures
    assert not failures, f"the emulated API server failed during the test: {failures!r}"


@pytest.fixture
def argo(kube_api: KubeApi) -> ArgoPlayer:
    return ArgoPlayer(kube_api)


@pytest.fixture
def controllers(kube_api: KubeApi, tmp_path: Path) -> Iterator[Controllers]:
    with running_controllers(kube_api, tmp_path) as processes:
        yield processes


@pytest.fixture
def controller(controllers: Controllers) -> Controller:
    return controllers.start()
