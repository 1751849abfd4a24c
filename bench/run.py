"""Benchmarks: the streamer side by side with the reference pipeline, in one run.

    python bench/run.py            # ~1 GiB corpus; memory runs at 256 MiB and 4 GiB
    python bench/run.py --quick    # small sizes: a smoke run (CI), no targets checked

Both tools read the same generated SQL dump and talk to the same S3 server (moto, in its own
process on 127.0.0.1). The reference is the shell pipeline a user would otherwise write:

    backup:  cat corpus | gzip | age -r R | aws s3 cp - s3://bench/ref
    restore: aws s3 cp s3://bench/ref - | age -d -i K | gzip -d > /dev/null

Each speed measurement runs three times (once with ``--quick``) and the median is kept; the
memory runs once per size. Peak RSS is the largest resident set of the measured process tree
(``ru_maxrss`` of the waited-for children). Results print as a table and go to
``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, s3_client, wait_for_port, write_inputs  # noqa: E402
from streamer.sample import parse_size  # noqa: E402

BUCKET = "bench"
#: Each measurement is repeated and the median kept (set by --repeat).
REPEAT = 1
TARGETS = {"backup_speedup": 5.0, "backup_size": 1.05, "restore_speedup": 3.0, "rss_mib": 128.0}


@dataclass
class Measure:
    name: str
    seconds: float
    plaintext_bytes: int
    peak_rss_mib: float
    stored_bytes: int | None = None

    @property
    def mb_per_s(self) -> float:
        return self.plaintext_bytes / 1e6 / self.seconds


def run_measured(argv: list[str], env: dict[str, str], name: str, plaintext: int) -> Measure:
    """Run ``argv`` to completion; wall time and the peak RSS of its process tree."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE)
    out, _ = proc.communicate()
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    # RUSAGE_CHILDREN covers every waited-for descendant; measure each run in a fresh process
    # so earlier runs do not count (see _isolated).
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    stored = json.loads(out).get("storedBytes") if out.strip().startswith(b"{") else None
    return Measure(name, seconds, plaintext, peak, stored)


def _isolated(args: list[str], env: dict[str, str], repeat: int | None = None) -> Measure:
    """Measure ``repeat`` times (default ``REPEAT``), each in a child interpreter (so
    ru_maxrss is that run's alone); keep the run with the median time. Both tools get the
    same treatment."""
    runs = []
    for _ in range(repeat or REPEAT):
        out = subprocess.run(
            [sys.executable, __file__, "--measure-one", json.dumps(args)],
            env=env,
            stdout=subprocess.PIPE,
            check=True,
        ).stdout
        runs.append(Measure(**json.loads(out)))
    runs.sort(key=lambda m: m.seconds)
    return runs[len(runs) // 2]


def _start_s3(env: dict[str, str]) -> subprocess.Popen[bytes]:
    port = int(env["AWS_ENDPOINT_URL_S3"].rsplit(":", 1)[1])
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, "the S3 server (moto)")
    s3_client(env).create_bucket(Bucket=BUCKET)
    return server


def _tools() -> dict[str, str]:
    found = {}
    for tool in ("gzip", "age", "aws"):
        path = shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))
        if path is None:
            raise SystemExit(f"the reference pipeline needs '{tool}' on PATH")
        found[tool] = path
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--size", default=None, help="corpus size for speed runs (default 1G)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs per measurement, median kept (default 3; 1 with --quick)",
    )
    parser.add_argument("--measure-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global REPEAT
    REPEAT = args.repeat or (1 if args.quick else 3)
    if args.measure_one:
        name, plaintext, *argv = json.loads(args.measure_one)
        print(json.dumps(asdict(run_measured(argv, dict(os.environ), name, plaintext))))
        return

    size = parse_size(args.size or ("32M" if args.quick else "1G"))
    memory_sizes = ["32M", "128M"] if args.quick else ["256M", "4G"]
    tools = _tools()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}",
        "AWS_ENDPOINT_URL": "",
        "PYTHONPATH": str(ROOT),
    }
    env["AWS_ENDPOINT_URL"] = env["AWS_ENDPOINT_URL_S3"]
    server = _start_s3(env)
    try:
        results = _run_all(workdir, env, tools, size, memory_sizes)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    _report(results, quick=args.quick)


def _run_all(
    workdir: Path, env: dict[str, str], tools: dict[str, str], size: int, memory_sizes: list[str]
) -> dict[str, Measure]:
    key, recipient, corpus = write_inputs(workdir, size)
    streamer = [sys.executable, "-m", "streamer", "-q"]
    s3 = f"s3://{BUCKET}"
    results: dict[str, Measure] = {}
    print(
        f"corpus: {size / 1e6:.0f} MB SQL dump; S3: moto at {env['AWS_ENDPOINT_URL_S3']}",
        flush=True,
    )

    results["backup_streamer"] = _isolated(
        [
            "streamer backup",
            size,
            *streamer,
            "backup",
            f"{s3}/streamer.sql",
            "-r",
            recipient,
            "--json",
            "--",
            "cat",
            str(corpus),
        ],
        env,
    )
    reference = (
        f"cat {corpus} | {tools['gzip']} | {tools['age']} -r {recipient} | "
        f"{tools['aws']} s3 cp --only-show-errors - {s3}/reference.sql.gz.age"
    )
    results["backup_reference"] = _isolated(
        ["reference backup (gzip, age, aws s3 cp)", size, "sh", "-c", reference], env
    )
    head = s3_client(env).head_object(Bucket=BUCKET, Key="reference.sql.gz.age")
    results["backup_reference"].stored_bytes = int(head["ContentLength"])

    results["restore_streamer"] = _isolated(
        [
            "streamer restore",
            size,
            *streamer,
            "restore",
            f"{s3}/streamer.sql",
            "-i",
            str(key),
            "--",
            "sh",
            "-c",
            "cat >/dev/null",
        ],
        env,
    )
    reference = (
        f"{tools['aws']} s3 cp --only-show-errors {s3}/reference.sql.gz.age - | "
        f"{tools['age']} -d -i {key} | {tools['gzip']} -d > /dev/null"
    )
    results["restore_reference"] = _isolated(
        ["reference restore (aws s3 cp, age -d, gzip -d)", size, "sh", "-c", reference], env
    )

    for label in memory_sizes:
        n = parse_size(label)
        results[f"memory_{label}"] = _isolated(
            [
                f"streamer backup {label}",
                n,
                *streamer,
                "backup",
                f"{s3}/memory-{label}.sql",
                "-r",
                recipient,
                "--json",
                "--",
                sys.executable,
                "-m",
                "streamer.sample",
                label,
            ],
            env,
            repeat=1,
        )
    return results


def _report(results: dict[str, Measure], *, quick: bool) -> None:
    print()
    print("| run | seconds | MB/s | stored MB | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for m in results.values():
        stored = f"{m.stored_bytes / 1e6:.1f}" if m.stored_bytes else "-"
        print(
            f"| {m.name} | {m.seconds:.2f} | {m.mb_per_s:.0f} | {stored} | {m.peak_rss_mib:.0f} |"
        )
    b_s, b_r = results["backup_streamer"], results["backup_reference"]
    r_s, r_r = results["restore_streamer"], results["restore_reference"]
    mem = [m for k, m in results.items() if k.startswith("memory_")]
    ratios = {
        "backup_speedup": b_s.mb_per_s / b_r.mb_per_s,
        "backup_size": (b_s.stored_bytes or 0) / (b_r.stored_bytes or 1),
        "restore_speedup": r_s.mb_per_s / r_r.mb_per_s,
        "rss_mib": max(m.peak_rss_mib for m in mem),
        "rss_growth": mem[-1].peak_rss_mib / mem[0].peak_rss_mib,
    }
    first, last = mem[0], mem[-1]
    lines = [
        f"backup:  streamer {ratios['backup_speedup']:.2f}x the reference's throughput "
        "(target >= 5x)",
        f"         output {ratios['backup_size']:.3f}x the reference's size (target <= 1.05x)",
        f"restore: streamer {ratios['restore_speedup']:.2f}x the reference's throughput "
        "(target >= 3x)",
        f"memory:  peak RSS {first.peak_rss_mib:.0f} MiB ({first.name}) vs "
        f"{last.peak_rss_mib:.0f} MiB ({last.name}): {ratios['rss_growth']:.2f}x "
        "(target <= 128 MiB, growth <= 1.10x)",
    ]
    print("\n" + "\n".join(lines))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / ("quick.json" if quick else "latest.json")).write_text(
        json.dumps({"ratios": ratios, "runs": {k: asdict(v) for k, v in results.items()}}, indent=2)
    )
    if quick:
        print("(quick run: a smoke test on small sizes; targets apply to the full run)")


if __name__ == "__main__":
    main()
