"""The real controller process (``backup-gen controller``) of a test, and the objects it is given.

The process runs as a user runs it, with ``KUBECONFIG`` pointing at the test's loopback API
(:mod:`tests.controller.kubeapi`) and no AWS variables: S3 is reached only through the
BackupStorage and its credentials Secret, as in a cluster. :class:`Controllers` starts, kills
and restarts processes within one test (a restart is a new process on the same API, as after a
crash or a rollout) and stops every one at teardown; the ``controllers`` and ``controller``
fixtures of :mod:`tests.controller.conftest` hand it out.

The objects are the design document's examples (``argo/examples/mysql.yaml``, SEED.md's), pointed at
the moto server, with the credentials Secret the storage names.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import FAKE_ACCESS_KEY, FAKE_SECRET, free_port
from tests.controller.emulator import Fault
from tests.controller.kubeapi import KubeApi

__all__ = [
    "CATALOGUE",
    "CRONS",
    "NAMESPACE",
    "RUNS",
    "SCHEDULES",
    "SECRETS",
    "STORAGES",
    "TEMPLATES",
    "WORKFLOWS",
    "Controller",
    "Controllers",
    "arrange",
    "disarm",
    "examples",
    "ready",
    "running_controllers",
    "source_secret",
]

EXAMPLES = Path(__file__).resolve().parents[2] / "argo" / "examples" / "mysql.yaml"
BACKUP_GEN = Path(sys.executable).with_name("backup-gen")
NAMESPACE = "db"
SCHEDULES = "backup-operator.io/v1/backupschedules"
STORAGES = "backup-operator.io/v1/backupstorages"
RUNS = "backup-operator.io/v1/backupruns"
CRONS = "argoproj.io/v1alpha1/cronworkflows"
WORKFLOWS = "argoproj.io/v1alpha1/workflows"
TEMPLATES = "argoproj.io/v1alpha1/workflowtemplates"
SECRETS = "v1/secrets"
CATALOGUE = "backup-operator.io/catalogue"
#: How long a stopped process gets to exit on SIGTERM before it is killed.
STOP_TIMEOUT = 30.0


@dataclass
class Controller:
    """One controller process, its log file and its HTTP ports."""

    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int
    liveness_port: int

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as reply:
            return str(reply.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the process's metrics; 0 when it has none (or does not answer yet)."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        try:
            text = self.metrics()
        except OSError:  # started, not yet serving
            return 0.0
        for line in text.splitlines():
            if line.startswith(f"{name}{{{wanted}}} "):
                return float(line.split()[-1])
        return 0.0

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, as a Deployment's rollout does; killed if it does not exit in time."""
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a lost node does: no cleanup of any kind."""
        if self.alive():
            self.process.kill()
        self.process.wait()


def start_controller(kube_api: KubeApi, log_path: Path, *args: str) -> Controller:
    """Start ``backup-gen controller`` for :data:`NAMESPACE` on ``kube_api``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["KUBECONFIG"] = str(kube_api.kubeconfig)
    metrics_port, liveness_port = free_port(), free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(BACKUP_GEN),
                "controller",
                "--namespace",
                NAMESPACE,
                "--metrics-port",
                str(metrics_port),
                "--liveness-port",
                str(liveness_port),
                "--verbose",
                *args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Controller(process, log_path, metrics_port, liveness_port)


@dataclass
class Controllers:
    """The controller processes of one test, in the order they were started."""

    kube_api: KubeApi
    directory: Path
    started: list[Controller] = field(default_factory=list)

    def start(self, *args: str) -> Controller:
        """A new process; the first one's log is ``controller.log``, the next ``controller-2.log``."""
        number = len(self.started) + 1
        name = "controller.log" if number == 1 else f"controller-{number}.log"
        process = start_controller(self.kube_api, self.directory / name, *args)
        self.started.append(process)
        return process

    def restart(self, old: Controller, *args: str) -> Controller:
        """Kill ``old`` (SIGKILL: nothing is finished or cleaned up) and start a new one."""
        old.kill()
        return self.start(*args)

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {c.log_path.name}\n{c.log()}" for c in self.started)


@contextlib.contextmanager
def running_controllers(kube_api: KubeApi, directory: Path) -> Iterator[Controllers]:
    """Controllers started within the block are stopped when it ends; their logs printed
    (pytest shows the captured output of failed tests only)."""
    processes = Controllers(kube_api, directory)
    try:
        yield processes
    finally:
        processes.stop_all()
        print(processes.logs())


def disarm(kube_api: KubeApi, fault: Fault) -> None:
    """Stop an injected failure: requests from now on reach the API."""

    def depleted() -> None:
        fault.times = len(fault.hits)

    kube_api.call(depleted)


# -- the objects ------------------------------------------------------------------------------


def examples(endpoint: str, bucket: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """SEED.md's BackupStorage and BackupSchedule, pointed at the moto server."""
    storage, schedule = (copy.deepcopy(doc) for doc in yaml.safe_load_all(EXAMPLES.read_text()))
    storage["spec"]["parameters"].update(endpoint=endpoint, bucket=bucket)
    schedule["metadata"]["namespace"] = NAMESPACE
    return storage, schedule


def source_secret(
    access_key: str = FAKE_ACCESS_KEY, secret_key: str = FAKE_SECRET
) -> dict[str, Any]:
    """The storage's credentials, in the namespace the storage names."""
    values = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "minio-credentials", "namespace": "minio"},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }


def ready(body: Mapping[str, Any] | None) -> str | None:
    """The status of an object's ``Ready`` condition, None without one."""
    for cond in ((body or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status"))
    return None


def arrange(kube_api: KubeApi, s3_endpoint: str, bucket: str, **spec: Any) -> dict[str, Any]:
    """Create the Secret, the storage and the schedule (its ``spec`` updated with ``spec``),
    as ``kubectl apply`` would; the schedule as stored."""
    storage, schedule = examples(s3_endpoint, bucket)
    schedule["spec"].update(spec)
    kube_api.create(SECRETS, source_secret())
    kube_api.create(STORAGES, storage)
    return kube_api.create(SCHEDULES, schedule)
