"""Benchmark: the real controller (``backup-gen controller``) against the loopback Kubernetes API.

    python bench/controller.py            # 1,000 schedules, 10,000 runs (targets below)
    python bench/controller.py --quick    # 20 schedules, 200 runs: a smoke run (CI)
    python bench/controller.py --profile /tmp/prof   # the controller and the emulator profiled

The API is the controller tests' emulator (``tests/controller``), in this process on a thread
of its own; S3 is a moto server of the benchmark's, so the storage's bucket check really
succeeds. What is written before the controller starts, and what "converged" means, is told by
:mod:`bench.controller_world`. Then, in three phases:

1. **cold start**: the controller starts (a subprocess, as a user runs it:
   ``backup-gen controller --all-namespaces``) with every run's status still to write and every
   finished Workflow still held; the time is taken from the process start until the store has
   converged and the controller has reconciled every run, schedule and Workflow at least once
   (its ``backup_operator_reconciles_total``, scraped once the store has converged), and that
   held for a second;
2. **flips**: once the controller is quiet (no reconcile for 2 s), ``--flips`` running
   Workflows finish (Succeeded and Failed in turn, with Argo's outputs) at ``--rate`` per
   second, as Argo writes them (a PUT of the whole Workflow); each one's latency is from the
   commit of its new phase to the commit of its run's status that shows it (both timed in the
   server, on one clock);
3. **restart**: the controller is stopped, ``--downtime-flips`` more Workflows finish while it is
   down, and a new process starts on the state the first one left: time to converge again.

Reported per phase: seconds, the controller's CPU seconds (its event loop thread and its other
threads apart), the CPU seconds of the emulator's thread (which also plays Argo and runs the
convergence checks) and moto's, the controller's peak RSS (``VmHWM``), the store's commits, the
requests the emulator served by verb and resource, and when the controller had listed what it
watches and kopf had delivered all of it (from its log). On a shared machine the seconds move
with the load of others (printed); the CPU seconds and request counts are the steadier figures.
Results go to ``bench/results/controller.json`` (``controller_quick.json`` with ``--quick``).
Nothing is asserted: targets are printed beside the figures.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import s3_env, start_moto  # noqa: E402
from bench.controller_process import Clocks, Controller, Usage  # noqa: E402
from bench.controller_world import Layout, RequestCounter, World, build  # noqa: E402
from tests.controller.kubeapi import KubeApi, running_kube_api  # noqa: E402

BUCKET = "bench-controller"
TARGETS = {"converge_s": 60.0, "p99_s": 2.0, "rss_mib": 256.0}
#: How often convergence and progress are looked at, and how long it must then hold.
POLL = 0.1
SCRAPE = 0.5
SETTLE = 1.0
QUIET = 2.0
PROGRESS_EVERY = 5.0
# -- measuring -------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    cpu: Usage = field(default_factory=Usage)
    peak_rss_mib: float = 0.0
    reconciles: dict[str, float] = field(default_factory=dict)
    store_changes: int = 0
    latencies: list[float] = field(default_factory=list)
    #: Requests the emulator served during the phase, by verb and resource.
    requests: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _tracker_state(api: KubeApi, world: World) -> tuple[float | None, int, int, list[Any]]:
    t = world.tracker
    return api.call(lambda: (t.converged_at, len(t.bad), t.changes, list(islice(t.bad, 5))))


def wait_converged(
    api: KubeApi,
    world: World,
    controller: Controller,
    clocks: Clocks,
    wanted: dict[str, int],
    timeout: float,
    since: float,
) -> float:
    """Seconds from ``since`` until converged (see the module docstring), held for SETTLE.

    The store is looked at every POLL (cheap: the tracker knows); the controller's metrics
    only once the store has converged, every SCRAPE (a scrape costs the controller CPU)."""
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + PROGRESS_EVERY
    counted_at: float | None = None
    scraped = 0.0
    counts: dict[str, float] = {}
    while True:
        controller.check_alive()
        now = time.monotonic()
        converged_at, bad, changes, sample = _tracker_state(api, world)
        if converged_at is None:
            counted_at = None
        elif counted_at is None and now - scraped >= SCRAPE:
            scraped = now
            counts = controller.reconciles()
            if all(counts.get(kind, 0) >= n for kind, n in wanted.items()):
                counted_at = now
        if converged_at is not None and counted_at is not None:
            done = max(converged_at, counted_at)
            if now - done >= SETTLE:
                return done - since
        if now > deadline:
            raise SystemExit(
                f"not converged after {timeout:g} s: {bad} objects left, e.g. {sample}; "
                f"reconciles {controller.reconciles()}\n{controller.tail()}"
            )
        if now >= next_report:
            cpu = clocks.read(controller)
            print(
                f"  {now - since:6.1f} s: {bad} objects not converged, {changes} commits, "
                f"controller CPU {cpu.controller:.1f} s, emulator CPU {cpu.emulator:.1f} s, "
                f"controller RSS {controller.rss_mib():.0f} MiB (peak {controller.hwm_mib():.0f})",
                flush=True,
            )
            next_report = now + PROGRESS_EVERY
        time.sleep(POLL)


def _phase(name: str, seconds: float, before: Usage, after: Usage, controller: Controller) -> Phase:
    return Phase(
        name,
        seconds,
        after - before,
        controller.hwm_mib(),
        controller.reconciles(),
    )


def wait_quiet(controller: Controller, timeout: float) -> float:
    """Seconds until the controller's reconcile counters stopped moving for QUIET seconds
    (the reconciles its own writes caused, after the store converged)."""
    began = time.monotonic()
    last, since = controller.reconciles(), time.monotonic()
    while time.monotonic() - since < QUIET:
        controller.check_alive()
        if time.monotonic() - began > timeout:
            raise SystemExit(f"the controller kept reconciling for {timeout:g} s: {last}")
        time.sleep(SCRAPE)
        now = controller.reconciles()
        if now != last:
            last, since = now, time.monotonic()
    return since - began


def start_phase(
    api: KubeApi, world: World, clocks: Clocks, layout: Layout, args: argparse.Namespace,
    workdir: Path, label: str, counter: RequestCounter,
) -> tuple[Controller, Phase]:  # fmt: skip
    """Start a controller; the figures of its start, until converged (then it is let go
    quiet, untimed)."""
    wanted = {"BackupRun": layout.runs, "BackupSchedule": layout.schedules, "Workflow": layout.runs}
    changes = api.call(lambda: world.tracker.changes)
    requests = counter.snapshot()
    before = clocks.read(None)  # a new process: its clocks start at 0
    controller = Controller(api, workdir, label, args.profile)
    try:
        seconds = wait_converged(
            api, world, controller, clocks, wanted, args.timeout, controller.started
        )
        phase = _phase(label, seconds, before, clocks.read(controller), controller)
        phase.requests = dict(counter.snapshot() - requests)
        phase.store_changes = api.call(lambda: world.tracker.changes) - changes
        phase.extra.update(controller.milestones())
        phase.extra["quiet_after_s"] = wait_quiet(controller, args.timeout)
    except BaseException:
        controller.stop()
        raise
    return controller, phase


def flip_phase(
    api: KubeApi, world: World, controller: Controller, clocks: Clocks, count: int, rate: float,
    timeout: float, counter: RequestCounter,
) -> Phase:  # fmt: skip
    """Finish ``count`` running Workflows at ``rate`` per second; latency of each."""
    tracker = world.tracker
    chosen, world.running = world.running[:count], world.running[count:]
    before = clocks.read(controller)
    changes = api.call(lambda: tracker.changes)
    requests = counter.snapshot()
    began = time.monotonic()
    for index, where in enumerate(chosen):
        time.sleep(max(0.0, began + index / rate - time.monotonic()))
        phase = "Succeeded" if index % 2 == 0 else "Failed"
        outputs = world.outputs(where[1])

        def flip(
            where: tuple[str, str] = where, phase: str = phase, outputs: dict[str, str] = outputs
        ) -> None:
            tracker.flip(where, phase, outputs, timed=True)

        api.call(flip, copied=False)
    deadline = time.monotonic() + timeout
    while api.call(lambda: len(tracker.counting)):
        controller.check_alive()
        if time.monotonic() > deadline:
            left = api.call(lambda: sorted(tracker.counting)[:5])
            raise SystemExit(f"runs not updated after {timeout:g} s, e.g. {left}")
        time.sleep(POLL)
    seconds = time.monotonic() - began
    phase = _phase("flips", seconds, before, clocks.read(controller), controller)
    phase.latencies = api.call(tracker.latencies)
    phase.store_changes = api.call(lambda: tracker.changes) - changes
    phase.requests = dict(counter.snapshot() - requests)
    phase.extra = {"flips": count, "rate_per_s": rate}
    return phase


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    return values[max(0, math.ceil(share * len(values)) - 1)] if values else float("nan")


class Profiled:
    """cProfile in the emulator's thread while a phase runs (with ``--profile``)."""

    def __init__(self, api: KubeApi, path: Path | None) -> None:
        self.api = api
        self.path = path
        self.profile = cProfile.Profile() if path is not None else None

    def __enter__(self) -> Profiled:
        if self.profile is not None:
            self.api.call(self.profile.enable, copied=False)
        return self

    def __exit__(self, *_: object) -> None:
        if self.profile is not None and self.path is not None:
            self.api.call(self.profile.disable, copied=False)
            self.profile.dump_stats(self.path)


def run(args: argparse.Namespace, layout: Layout, workdir: Path) -> dict[str, Phase]:
    env = s3_env(ROOT)
    moto = start_moto(env, BUCKET)
    phases: dict[str, Phase] = {}

    def profiled(label: str) -> Profiled:
        return Profiled(api, args.profile / f"emulator-{label}.prof" if args.profile else None)

    try:
        with running_kube_api(workdir / "kubeconfig") as api:
            began = time.monotonic()
            world = build(
                api,
                layout,
                endpoint=env["AWS_ENDPOINT_URL_S3"],
                bucket=BUCKET,
                keys=(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]),
            )
            print(
                f"wrote {layout.schedules} schedules and {layout.runs} runs (and their Workflows) "
                f"in {layout.namespaces} namespaces in {time.monotonic() - began:.1f} s",
                flush=True,
            )
            clocks = Clocks(moto.pid)
            counter = RequestCounter(api)
            print("cold start:", flush=True)
            with profiled("cold"):
                controller, phases["cold"] = start_phase(
                    api, world, clocks, layout, args, workdir, "cold", counter
                )
            try:
                print(f"flips: {args.flips} at {args.rate:g}/s", flush=True)
                with profiled("flips"):
                    phases["flips"] = flip_phase(
                        api, world, controller, clocks, args.flips, args.rate, args.timeout,
                        counter,
                    )  # fmt: skip
            finally:
                controller.stop()
            phases["cold"].peak_rss_mib = controller.peak_rss_mib
            phases["flips"].peak_rss_mib = controller.peak_rss_mib
            for where in world.running[: args.downtime_flips]:
                outputs = world.outputs(where[1])
                api.call(
                    lambda w=where, o=outputs: world.tracker.flip(w, "Succeeded", o, timed=False),
                    copied=False,
                )
            world.running = world.running[args.downtime_flips :]
            print(f"restart ({args.downtime_flips} Workflows finished while down):", flush=True)
            with profiled("restart"):
                controller, phases["restart"] = start_phase(
                    api, world, clocks, layout, args, workdir, "restart", counter
                )
            controller.stop()
            phases["restart"].peak_rss_mib = controller.peak_rss_mib
            errors = api.call(lambda: (world.tracker.errors, world.tracker.deleted))
            if any(errors):
                raise SystemExit(f"the tracker failed, or objects were deleted: {errors}")
            if api.failures:
                raise SystemExit(f"the emulated API server failed: {api.failures!r}")
    finally:
        moto.terminate()
        moto.wait()
    return phases


def report(phases: dict[str, Phase], layout: Layout, *, quick: bool) -> None:
    print()
    print("| phase | seconds | controller CPU s (loop + threads) | emulator CPU s | moto CPU s "
          "| peak RSS MiB | commits |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for p in phases.values():
        print(
            f"| {p.name} | {p.seconds:.1f} | {p.cpu.controller:.1f} ({p.cpu.loop:.1f} + "
            f"{p.cpu.threads:.1f}) | {p.cpu.emulator:.1f} | {p.cpu.moto:.1f} "
            f"| {p.peak_rss_mib:.0f} | {p.store_changes} |"
        )
    for name, p in phases.items():
        if "quiet_after_s" in p.extra:
            print(
                f"{name}: listed at {p.extra.get('listed_s', float('nan')):.1f} s, all delivered "
                f"at {p.extra.get('delivered_s', float('nan')):.1f} s, converged at "
                f"{p.seconds:.1f} s, quiet (no reconcile for {QUIET:g} s) "
                f"{p.extra['quiet_after_s']:.1f} s later"
            )
    for p in phases.values():
        top = sorted(p.requests.items(), key=lambda kv: -kv[1])[:8]
        print(f"requests, {p.name}: {sum(p.requests.values())}: "
              + ", ".join(f"{k} {v}" for k, v in top))  # fmt: skip
    latencies = phases["flips"].latencies
    figures = {
        "converge_s": phases["cold"].seconds,
        "restart_converge_s": phases["restart"].seconds,
        "p50_s": percentile(latencies, 0.50),
        "p99_s": percentile(latencies, 0.99),
        "max_s": latencies[-1] if latencies else float("nan"),
        "rss_mib": max(p.peak_rss_mib for p in phases.values()),
    }
    flips = phases["flips"].extra
    print(
        f"\n{layout.schedules} schedules, {layout.runs} runs, {layout.namespaces} namespaces; "
        f"{os.cpu_count()} CPUs, load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"converge: cold start {figures['converge_s']:.1f} s, restart "
        f"{figures['restart_converge_s']:.1f} s (target <= {TARGETS['converge_s']:g} s)"
    )
    print(
        f"latency:  {len(latencies)} of {flips['flips']} flips at {flips['rate_per_s']:g}/s: "
        f"p50 {figures['p50_s']:.3f} s, p99 {figures['p99_s']:.3f} s, max "
        f"{figures['max_s']:.3f} s (target p99 <= {TARGETS['p99_s']:g} s)"
    )
    print(f"memory:   controller peak RSS {figures['rss_mib']:.0f} MiB "
          f"(target <= {TARGETS['rss_mib']:g} MiB)")  # fmt: skip
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    result = {
        "layout": asdict(layout),
        "figures": figures,
        "machine": {"cpus": os.cpu_count(), "load_average_after": os.getloadavg()},
        "targets": TARGETS,
        "phases": {
            k: {**asdict(p), "controller_cpu_s": p.cpu.controller} for k, p in phases.items()
        },
    }
    (out / ("controller_quick.json" if quick else "controller.json")).write_text(
        json.dumps(result, indent=2)
    )
    if quick:
        print("(quick run: a smoke test on a small layout; the targets apply to the full run)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20 schedules, 200 runs (smoke)")
    parser.add_argument("--schedules", type=int, help="default 1000 (20 with --quick)")
    parser.add_argument("--runs", type=int, help="default 10000 (200 with --quick)")
    parser.add_argument("--namespaces", type=int, default=4, help="default %(default)s")
    parser.add_argument("--flips", type=int, help="Workflows finished while measured "
                        "(default 500, 10 with --quick)")  # fmt: skip
    parser.add_argument("--rate", type=float, default=20.0, help="flips per second (default 20)")
    parser.add_argument("--downtime-flips", type=int, help="Workflows finished while the "
                        "controller is down (default 100, 4 with --quick)")  # fmt: skip
    parser.add_argument("--timeout", type=float, help="per phase (default 900 s, 120 with --quick)")
    parser.add_argument("--profile", type=Path, help="write cProfile stats of each controller "
                        "process here (<phase>.prof; the event loop thread only)")  # fmt: skip
    args = parser.parse_args(argv)
    layout = Layout(
        schedules=args.schedules or (20 if args.quick else 1000),
        runs=args.runs or (200 if args.quick else 10_000),
        namespaces=args.namespaces,
    )
    if args.flips is None:
        args.flips = 10 if args.quick else 500
    if args.timeout is None:
        args.timeout = 120.0 if args.quick else 900.0
    if args.downtime_flips is None:
        args.downtime_flips = 4 if args.quick else 100
    if args.flips + args.downtime_flips > layout.schedules:
        parser.error("--flips and --downtime-flips: at most one running Workflow per schedule")
    with tempfile.TemporaryDirectory(prefix="bench-controller-") as tmp:
        phases = run(args, layout, Path(tmp))
    report(phases, layout, quick=args.quick)


if __name__ == "__main__":
    main()
