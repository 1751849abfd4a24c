"""Benchmark: the exec hop against the local source, same corpus and settings, in one run.

    python bench/exec.py             # 1 GB corpus, best of two rounds
    python bench/exec.py --quick     # 32 MB, one round: a smoke run (CI)
    python bench/exec.py --profile   # also profile one exec backup and restore (cProfile)

The streamer backs up the same generated SQL dump (gzip + age, into S3) once with the command
as a local process and once through ``--pod/--container``, and restores both the same way.
S3 is moto and the exec endpoint is the tests' loopback API server over TLS, each in its own
process on 127.0.0.1 and started here, so neither shares the streamer's interpreter. The
command behind exec runs on this machine too: both sides compete for the same cores, which
a real cluster would not make them do. The endpoint is run as cheaply as it faithfully can
(:func:`tests.exec.apiserver.process_env`): it picks the TLS suite kube-apiserver picks and
keeps its heap, so less of what a cluster does elsewhere lands on the streamer's cores.

Prints throughput (MB of plaintext per second), the exec/local ratio for backup and restore,
and the streamer's peak RSS (VmHWM, polled from /proc). Nothing is asserted: timings on a
shared machine are information, not a test. The issue's targets are shown for reference.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, s3_client, wait_for_port, write_inputs  # noqa: E402
from streamer.sample import parse_size  # noqa: E402
from tests.exec.apiserver import process_env  # noqa: E402

BUCKET = "bench-exec"
TOKEN = secrets.token_hex(16)  # the loopback API server's bearer token, fresh per run
NAMESPACE, POD, CONTAINER = "bench", "run-pod", "main"
TARGET_RATIO = 0.60
TARGET_RSS_MIB = 128.0


@dataclass
class Run:
    name: str
    seconds: float
    plaintext_bytes: int
    peak_rss_mib: float
    cpu_seconds: float  #: the streamer's, with its local command's
    server_cpu_seconds: dict[str, float]  #: moto's and the API server's (with exec'd commands)

    @property
    def mb_per_s(self) -> float:
        return self.plaintext_bytes / 1e6 / self.seconds


def _cpu_seconds(pid: int) -> float:
    """CPU time of a running process and of its children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(name: str, argv: list[str], servers: Servers, plaintext: int) -> Run:
    """Run ``argv``: wall time, its peak RSS (not its parent's) and everyone's CPU time."""
    peak_kib = 0
    before = servers.cpu()
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=servers.env, stdout=subprocess.DEVNULL)
    status_file = Path(f"/proc/{proc.pid}/status")
    while True:
        with contextlib.suppress(OSError, ValueError):
            for line in status_file.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.02)
    seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    after = servers.cpu()
    return Run(
        name,
        seconds,
        plaintext,
        peak_kib / 1024,
        usage.ru_utime + usage.ru_stime,
        {k: after[k] - before[k] for k in after},
    )


class Servers:
    """moto and the loopback API server, each in its own process; stopped on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        s3_port = free_port()
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{s3_port}",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "PYTHONPATH": str(ROOT),
            "KUBECONFIG": str(workdir / "kubeconfig"),
        }
        for name in ("POD_NAME", "POD_NAMESPACE", "KUBERNETES_SERVICE_HOST"):
            self.env.pop(name, None)
        try:
            self._start_all(s3_port)
        except BaseException:
            self.stop()  # a server that did start must not outlive a failed start
            raise

    def _start_all(self, s3_port: int) -> None:
        workdir = self.workdir
        self._start(
            "moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)]
        )
        wait_for_port(s3_port, "moto")
        kube_port = free_port()
        self._start(
            "apiserver",
            [sys.executable, "-m", "tests.exec.apiserver", "--port", str(kube_port),
             "--token", TOKEN, "--pod", f"{NAMESPACE}/{POD}", "--container", CONTAINER,
             "--kubeconfig", str(workdir / "kubeconfig"), "--tls-dir", str(workdir)],
            extra_env=process_env(workdir),
        )  # fmt: skip
        wait_for_port(kube_port, "the loopback API server")
        for _ in range(100):  # it writes the kubeconfig just after it starts listening
            if (workdir / "kubeconfig").exists():
                break
            time.sleep(0.05)
        else:
            raise SystemExit("the loopback API server wrote no kubeconfig")
        s3_client(self.env).create_bucket(Bucket=BUCKET)

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def cpu(self) -> dict[str, float]:
        return {name: _cpu_seconds(proc.pid) for name, proc in self.procs.items()}

    def _start(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        self.procs[name] = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def commands(source: str, corpus: Path, recipient: str, key: Path) -> tuple[list[str], list[str]]:
    """The backup and restore argv (after ``streamer``) for ``local`` or ``exec``."""
    where = ["--pod", POD, "--container", CONTAINER, "--namespace", NAMESPACE]
    where = where if source == "exec" else []
    url = f"s3://{BUCKET}/{source}.sql.gz.age"
    backup = ["backup", url, "-r", recipient, *where, "--", "cat", str(corpus)]
    restore = ["restore", url, "-i", str(key), *where, "--", "sh", "-c", "cat >/dev/null"]
    return backup, restore


def profile(servers: Servers, argv: list[str], out: Path, label: str) -> None:
    subprocess.run(
        [sys.executable, __file__, "--profile-run", str(out), "--", "-q", *argv],
        env=servers.env,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    print(f"\nprofile of the exec {label} (every thread of the streamer; top by own time):")
    stats = pstats.Stats(str(out))
    stats.sort_stats("tottime").print_stats(14)


def profile_run(out: Path, argv: list[str]) -> None:
    """Run the streamer CLI here with a profiler in every thread; merge them into ``out``."""
    profiles: list[cProfile.Profile] = []
    thread_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profiler = cProfile.Profile()
        profiles.append(profiler)
        profiler.enable()
        try:
            thread_run(self)
        finally:
            profiler.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    from streamer.cli import main as streamer_main

    main_profiler = cProfile.Profile()
    main_profiler.enable()
    try:
        streamer_main(argv, standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    finally:
        main_profiler.disable()
    stats = pstats.Stats(main_profiler)
    for profiler in profiles:
        with contextlib.suppress(TypeError):  # a thread that never ran its target
            stats.add(profiler)
    stats.dump_stats(str(out))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="32 MB, one round (CI smoke run)")
    parser.add_argument("--size", help="corpus size (default 1G, or 32M with --quick)")
    parser.add_argument("--rounds", type=int, help="rounds; the best of each is kept")
    parser.add_argument("--profile", action="store_true", help="profile one exec run of each")
    parser.add_argument("--profile-run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("streamer_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile_run:
        profile_run(args.profile_run, args.streamer_args)
        return
    size = parse_size(args.size or ("32M" if args.quick else "1G"))
    rounds = args.rounds or (1 if args.quick else 2)

    streamer = [sys.executable, "-m", "streamer", "-q"]
    best: dict[str, Run] = {}
    with tempfile.TemporaryDirectory(prefix="bench-exec-", ignore_cleanup_errors=True) as tmp:
        workdir = Path(tmp)
        key, recipient, corpus = write_inputs(workdir, size)
        with Servers(workdir) as servers:
            print(f"corpus: {size / 1e6:.0f} MB SQL dump, gzip + age, S3 (moto), {rounds} round(s)")
            for _ in range(rounds):
                for step in ("backup", "restore"):
                    for source in ("local", "exec"):
                        backup, restore = commands(source, corpus, recipient, key)
                        argv = backup if step == "backup" else restore
                        run = measure(f"{step} {source}", [*streamer, *argv], servers, size)
                        if run.name not in best or run.seconds < best[run.name].seconds:
                            best[run.name] = run
            if args.profile:
                backup, restore = commands("exec", corpus, recipient, key)
                profile(servers, backup, workdir / "backup.prof", "backup")
                profile(servers, restore, workdir / "restore.prof", "restore")
    report(best, quick=args.quick)


def report(runs: dict[str, Run], *, quick: bool) -> None:
    print()
    print("| run | seconds | MB/s | peak RSS MiB | CPU s: streamer | moto | API server + command |")
    print("|---|---|---|---|---|---|---|")
    for run in runs.values():
        other = run.server_cpu_seconds
        print(
            f"| {run.name} | {run.seconds:.2f} | {run.mb_per_s:.0f} | {run.peak_rss_mib:.0f} "
            f"| {run.cpu_seconds:.1f} | {other['moto']:.1f} | {other['apiserver']:.1f} |"
        )
    print(f"\n({os.cpu_count()} CPUs: CPU seconds / wall seconds near that count is saturation)")
    for step in ("backup", "restore"):
        local, exec_ = runs[f"{step} local"], runs[f"{step} exec"]
        print(
            f"{step:8} exec at {exec_.mb_per_s / local.mb_per_s:.0%} of local "
            f"({exec_.mb_per_s:.0f} vs {local.mb_per_s:.0f} MB/s; target ≥ {TARGET_RATIO:.0%}), "
            f"peak RSS {exec_.peak_rss_mib:.0f} MiB vs {local.peak_rss_mib:.0f} MiB "
            f"(target ≤ {TARGET_RSS_MIB:.0f} MiB)"
        )
    if quick:
        print("(quick run: a smoke test on a small corpus; the targets apply to the full run)")


if __name__ == "__main__":
    main()
