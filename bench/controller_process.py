"""The controller process of ``bench/controller.py``: started as a user starts it, and watched.

``backup-gen controller --all-namespaces`` runs as a subprocess with ``KUBECONFIG`` pointing at
the loopback API (``--profile``: under cProfile, every thread). What is read of it, from
``/proc`` and its metrics: CPU seconds of its event loop thread and of its other threads, its
resident set and peak (``VmRSS``, ``VmHWM``), its reconcile counters
(``backup_operator_reconciles_total``), and from its log when it had listed what it watches and
kopf had delivered all of it. :class:`Clocks` reads those CPU seconds beside the emulator
thread's and moto's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from bench.common import free_port
from tests.controller.kubeapi import KubeApi

__all__ = ["MILESTONES", "Clocks", "Controller", "Usage"]

BACKUP_GEN = Path(sys.executable).with_name("backup-gen")
#: Lines of the controller's log that mark its start (see Controller.milestones).
MILESTONES = {"listed_s": "objects; reconciling once kopf", "delivered_s": "delivered; reconciling"}
#: cProfile around the CLI: the main thread (the event loop: kopf, the decisions, the queue)
#: into <phase>.prof, every other thread that ends (the Kubernetes client's) into
#: <phase>.prof.<thread name>.
PROFILED = (
    "import cProfile, sys, threading\n"
    "from generator.cli import main\n"
    "out = sys.argv[1]\n"
    "sys.argv = ['backup-gen', *sys.argv[2:]]\n"
    "run = threading.Thread.run\n"
    "def profiled(self):\n"
    "    profile = cProfile.Profile()\n"
    "    try:\n"
    "        profile.runcall(run, self)\n"
    "    finally:\n"
    "        profile.dump_stats(f'{out}.{self.name}')\n"
    "threading.Thread.run = profiled\n"
    "cProfile.run('main()', out)\n"
)

# -- the controller process ------------------------------------------------------------------


def _ticks(path: Path) -> float:
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Usage:
    """CPU seconds of the controller (its loop thread, its other threads) and of the emulator."""

    loop: float = 0.0
    threads: float = 0.0
    emulator: float = 0.0
    moto: float = 0.0

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            *(a - b for a, b in zip(asdict(self).values(), asdict(other).values(), strict=True))
        )

    @property
    def controller(self) -> float:
        return self.loop + self.threads


class Controller:
    def __init__(self, api: KubeApi, workdir: Path, label: str, profile: Path | None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["KUBECONFIG"] = str(api.kubeconfig)
        self.metrics_port = free_port()
        self.log_path = workdir / f"controller-{label}.log"
        args = ["controller", "--all-namespaces", "--metrics-port", str(self.metrics_port)]
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            argv = [sys.executable, "-c", PROFILED, str(profile / f"{label}.prof"), *args]
        else:
            argv = [str(BACKUP_GEN), *args]
        with self.log_path.open("wb") as log:
            self.started = time.monotonic()
            self.started_wall = time.time()
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.peak_rss_mib = 0.0
        self.exit_usage: Usage | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def usage(self) -> tuple[float, float]:
        """CPU seconds of the event loop thread (the main one), and of all other threads (the
        process's total less the main thread's: threads that ended count too)."""
        total = _ticks(Path(f"/proc/{self.pid}/stat"))
        loop = _ticks(Path(f"/proc/{self.pid}/task/{self.pid}/stat"))
        return loop, total - loop

    def hwm_mib(self) -> float:
        """The peak resident set so far."""
        return self._status_mib("VmHWM:")

    def rss_mib(self) -> float:
        return self._status_mib("VmRSS:")

    def _status_mib(self, field: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
        return 0.0

    def reconciles(self) -> dict[str, float]:
        counts: dict[str, float] = {}
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
            ) as reply:
                text = reply.read().decode()
        except OSError:
            return counts
        for line in text.splitlines():
            if line.startswith("backup_operator_reconciles_total{"):
                kind = line.split('kind="', 1)[1].split('"', 1)[0]
                counts[kind] = float(line.split()[-1])
        return counts

    def milestones(self) -> dict[str, float]:
        """Seconds from the process start to the controller's own start lines: its listing
        done, every listed object delivered by kopf (then it reconciles)."""
        found = {}
        for line in self.log_path.read_text(errors="replace").splitlines():
            for name, needle in MILESTONES.items():
                if needle in line and name not in found:
                    stamp = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
                    found[name] = stamp.timestamp() - self.started_wall
        return found

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise SystemExit(
                f"the controller exited with {self.process.returncode}:\n{self.tail()}"
            )

    def tail(self, chars: int = 4000) -> str:
        """The end of the log (kopf's lines can be long: a line can name every object)."""
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.peak_rss_mib = max(self.peak_rss_mib, self.hwm_mib())
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Clocks:
    """The CPU clocks of the three parties."""

    def __init__(self, moto_pid: int) -> None:
        thread = next(t for t in threading.enumerate() if t.name == "loopback-kube-api")
        assert thread.ident is not None
        self._emulator = time.pthread_getcpuclockid(thread.ident)
        self._moto = moto_pid

    def read(self, controller: Controller | None) -> Usage:
        loop, threads = controller.usage() if controller is not None else (0.0, 0.0)
        moto = _ticks(Path(f"/proc/{self._moto}/stat"))
        return Usage(loop, threads, time.clock_gettime(self._emulator), moto)
