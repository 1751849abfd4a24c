"""Benchmark: restoring a dump into a real database, from a local file and through the
streamer from S3, side by side in one run.

    python bench/restore_db.py               # ~1 GB dump per database, three rounds, medians
    python bench/restore_db.py --quick       # 8 MB, one round: a smoke run (CI), no targets
    python bench/restore_db.py --size 200M --rounds 1 --only postgres

Each database loads the dump its own dump tool would write (``streamer/sample.py``): MariaDB a
``mysqldump``-style file of multi-row INSERTs, PostgreSQL a ``pg_dump``-style file with one
COPY. The file is loaded with the client reading it on stdin (``mariadb DB < dump.sql``,
``psql -v ON_ERROR_STOP=1 DB < dump.sql``); the streamer restores the same dump, stored with
gzip + age in S3 (moto, in its own process on 127.0.0.1), into the same client::

    streamer restore s3://bench-restore/mysql.sql.gz.age -i key.txt -- mariadb DB

Beside them, outside the target, ``cat dump.sql | mariadb DB``: what reading a pipe rather than
the file costs the client by itself, whoever writes the pipe.

A CPU-bound consumer shows whether the streamer and its command overlap: ``sha256sum <
dump.sql`` alone, the streamer alone (into ``sh -c 'cat >/dev/null'``, as ``bench/run.py``
measures restore), and the streamer into ``sha256sum``. Beside them, outside the target, ``cat
dump.sql | sha256sum``: the cheapest producer there is, so its ratio is what reading a pipe fed
by another running process costs ``sha256sum`` on this machine, whoever feeds it. And the time
a bare boto3 client takes from its process's start to the object's first byte (the interpreter,
boto3's import, the client, the GET): no restore from S3 in Python starts feeding its command
sooner. From it and the CPU the runs alone used comes the floor of the streamer's run on this
machine's cores: that first byte, then all of the runs' work on every core at once
(:func:`_cpu_floor`). The streamer, the consumer and moto share the same cores.

Every case runs once per round; within a round the file and streamer runs of a database swap
places every other round, so neither always pays for what the one before it left behind (the
server flushing pages of a dropped database). Before each load the database is dropped and
created again (not timed), and the run waits until the server is idle. Each load is checked
(the table's row count, the consumer's digest). The streamer starts as a deployed one does,
from compiled bytecode (cached in the run's directory by an unmeasured warm-up). Reported: the
median seconds of each case, the CPU seconds of the measured command tree, of moto and of the
database server (which also serves anyone else using it), and the ratios against their
targets. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import s3_env, start_moto, write_key  # noqa: E402
from streamer.sample import DIALECTS, Dialect, dump, parse_size  # noqa: E402

BUCKET = "bench-restore"
#: Each run its own database, so runs (and the tests' databases) never meet.
DATABASE = f"bench_restore_{secrets.token_hex(4)}"
HOST = "127.0.0.1"
TARGET_DB_RATIO = 1.10
TARGET_CONSUMER_RATIO = 1.15
#: The server counts as idle when it used less than this share of a core over IDLE_WINDOW.
IDLE_SHARE, IDLE_WINDOW, IDLE_WAIT_MAX = 0.05, 0.5, 30.0
CLIENT = {"mysql": "MariaDB", "postgres": "PostgreSQL"}
CONSUMER = "sha256sum"
GROUPS = (*DIALECTS, CONSUMER)


@dataclass
class Run:
    case: str
    seconds: float
    cpu_seconds: float  #: the measured command and its children (the streamer's command too)
    moto_cpu_seconds: float
    server_cpu_seconds: float  #: the database server's, every process of it


@dataclass
class Case:
    """One line of the table: a command, what it reads on stdin, and how its result is
    checked."""

    name: str
    argv: list[str]
    plaintext_bytes: int
    stdin: Path | None = None
    server: str | None = None  #: the database it loads ("mysql"/"postgres"), reset before each run
    check: Callable[[], None] = lambda: None
    runs: list[Run] = field(default_factory=list)

    def median(self) -> Run:
        ordered = sorted(self.runs, key=lambda r: r.seconds)
        return ordered[len(ordered) // 2]


# --- CPU accounting from /proc ------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _tree_cpu(root: int) -> float:
    """CPU seconds of a running process tree: each member's own, plus the root's reaped
    children (a PostgreSQL backend that has exited is counted in the postmaster's)."""
    ticks, children = 0, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = _stat(int(entry.name))
                children.setdefault(int(fields[1]), []).append((int(entry.name), fields))
    with contextlib.suppress(OSError):
        fields = _stat(root)
        ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    todo = [root]
    while todo:
        for pid, fields in children.get(todo.pop(), []):
            ticks += int(fields[11]) + int(fields[12])
            todo.append(pid)
    return ticks / os.sysconf("SC_CLK_TCK")


def _find_server(names: tuple[str, ...]) -> int | None:
    """The pid of the oldest process named one of ``names`` whose parent is not one too."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            comm = (entry / "comm").read_text().strip()
            if comm in names:
                parent = Path(f"/proc/{_stat(int(entry.name))[1]}/comm")
                if not parent.exists() or parent.read_text().strip() not in names:
                    found.append(int(entry.name))
    return min(found) if found else None


# --- the two databases --------------------------------------------------------------------


def _client(dialect: Dialect, database: str | None) -> list[str]:
    """The database's client, reading SQL on stdin and stopping at the first error."""
    if dialect == "mysql":
        mariadb = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
        return [mariadb, "-h", HOST, "-u", "root", *([database] if database else [])]
    psql = ["psql", "-h", HOST, "-U", "postgres", "-q", "-v", "ON_ERROR_STOP=1"]
    return [*psql, "-d", database or "postgres"]


def _sql(dialect: Dialect, statement: str, database: str | None = None) -> str:
    """Run one statement as the administrator; its output without headers."""
    batch = ["-N", "-B", "-e"] if dialect == "mysql" else ["-At", "-c"]
    argv = [*_client(dialect, database), *batch, statement]
    env = {**os.environ, "PGOPTIONS": "-c client_min_messages=warning"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{CLIENT[dialect]}: {statement!r} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def _reset(dialect: Dialect) -> None:
    _sql(dialect, f"DROP DATABASE IF EXISTS {DATABASE}")
    _sql(dialect, f"CREATE DATABASE {DATABASE}")
    if dialect == "postgres":
        _sql(dialect, "CHECKPOINT")  # the dropped database's dirty pages, written now


def _check_rows(dialect: Dialect, expected: int) -> Callable[[], None]:
    def check() -> None:
        count = int(_sql(dialect, "SELECT count(*) FROM orders", DATABASE))
        if count != expected:
            raise SystemExit(f"{CLIENT[dialect]} holds {count} rows, not the dump's {expected}")

    return check


def _wait_idle(pid: int | None) -> None:
    """Return once the server uses under IDLE_SHARE of a core (or after IDLE_WAIT_MAX)."""
    if pid is None:
        return
    deadline = time.monotonic() + IDLE_WAIT_MAX
    before = _tree_cpu(pid)
    while time.monotonic() < deadline:
        time.sleep(IDLE_WINDOW)
        now = _tree_cpu(pid)
        if now - before < IDLE_SHARE * IDLE_WINDOW:
            return
        before = now


# --- measuring ----------------------------------------------------------------------------


def measure(case: Case, env: dict[str, str], moto: int, servers: dict[str, int | None]) -> Run:
    server = servers.get(case.server or "")
    if case.server:
        _reset(case.server)  # type: ignore[arg-type]
        _wait_idle(server)
    moto_before = _tree_cpu(moto)
    server_before = _tree_cpu(server) if server else 0.0
    stdin = case.stdin.open("rb") if case.stdin else subprocess.DEVNULL
    try:
        started = time.monotonic()
        proc = subprocess.Popen(case.argv, env=env, stdin=stdin, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
    finally:
        if not isinstance(stdin, int):
            stdin.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{case.name} failed with exit code {proc.returncode}")
    run = Run(
        case.name,
        seconds,
        usage.ru_utime + usage.ru_stime,
        _tree_cpu(moto) - moto_before,
        (_tree_cpu(server) - server_before) if server else 0.0,
    )
    case.check()
    return run


@dataclass
class Group:
    """Cases compared with each other: ``combined`` against the slowest of ``baselines``."""

    name: str  #: as --only names it
    baselines: list[Case]  #: for the consumer, the consumer alone first
    combined: Case
    target: float
    claim: str  #: what the ratio says, for the report
    #: Measured beside the others, outside the target: what any tool doing the same costs.
    reference: Case | None = None
    #: Also outside the target: a bare S3 client's time to the object's first byte.
    first_byte: Case | None = None

    def cases(self, round_number: int) -> list[Case]:
        """This round's order: baselines, the references, then the combined case; reversed
        every other round."""
        references = [case for case in (self.reference, self.first_byte) if case is not None]
        ordered = [*self.baselines, *references, self.combined]
        return ordered if round_number % 2 == 0 else ordered[::-1]

    def slowest(self) -> float:
        return max(case.median().seconds for case in self.baselines)

    def ratio(self) -> float:
        return self.combined.median().seconds / self.slowest()


def _compiled(env: dict[str, str], workdir: Path) -> dict[str, str]:
    """``env`` with bytecode cached in ``workdir``: where PYTHONDONTWRITEBYTECODE is set (as
    here) every run would compile the streamer's own modules again, ~60 ms that no deployed
    run pays (the image compiles them at build time). :func:`_warm_up` fills the cache."""
    env = {**env, "PYTHONPYCACHEPREFIX": str(workdir / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _warm_up(workdir: Path, env: dict[str, str], key: Path, recipient: str) -> None:
    """A tiny backup and restore, not measured: every module a restore imports is compiled
    into the cache, and moto has served its first requests."""
    tiny = workdir / "warm-up.sql"
    tiny.write_bytes(b"SELECT 1;\n")
    url = f"s3://{BUCKET}/warm-up.sql.gz.age"
    streamer = [sys.executable, "-m", "streamer", "-q"]
    subprocess.run(
        [*streamer, "backup", url, "-r", recipient, "--", "cat", str(tiny)], env=env, check=True
    )
    subprocess.run(_streamer(key, url, ["sh", "-c", "cat >/dev/null"]), env=env, check=True)
    subprocess.run(_first_byte(url), env=env, check=True)  # boto3's own modules, compiled


#: The least any restore from S3 in Python does before its command's first byte.
FIRST_BYTE = """
import sys, boto3
body = boto3.client("s3").get_object(Bucket=sys.argv[1], Key=sys.argv[2])["Body"]
assert body.read(1)
"""


def _first_byte(url: str) -> list[str]:
    """A bare boto3 client reading the first byte of the object at ``url``, then exiting."""
    bucket, key = url.removeprefix("s3://").split("/", 1)
    return [sys.executable, "-c", FIRST_BYTE, bucket, key]


def _streamer(key: Path, url: str, command: list[str]) -> list[str]:
    return [sys.executable, "-m", "streamer", "-q", "restore", url, "-i", str(key), "--", *command]


def _store(
    workdir: Path, env: dict[str, str], size: int, dialect: Dialect, recipient: str
) -> tuple[Path, int, str]:
    """Write the dump of ``dialect``, store it with gzip + age in S3: its path, row count, URL."""
    path = workdir / f"{dialect}.sql"
    generated = dump(size, dialect)
    with path.open("wb") as f:
        for chunk in generated:
            f.write(chunk)
    url = f"s3://{BUCKET}/{dialect}.sql.gz.age"
    subprocess.run(
        [sys.executable, "-m", "streamer", "-q", "backup", url, "-r", recipient,
         "--", "cat", str(path)],
        env=env, check=True,
    )  # fmt: skip
    return path, generated.rows, url


def _setup(workdir: Path, env: dict[str, str], size: int, only: set[str]) -> list[Group]:
    """Write the dumps the groups in ``only`` need, store them in S3; the groups."""
    key, recipient = write_key(workdir)
    _warm_up(workdir, env, key, recipient)
    stored = {
        dialect: _store(workdir, env, size, dialect, recipient)
        for dialect in DIALECTS
        if dialect in only or (dialect == "mysql" and CONSUMER in only)
    }
    groups = []
    for dialect in DIALECTS:
        if dialect not in only:
            continue
        path, rows, url = stored[dialect]
        n, check, client, name = (
            path.stat().st_size,
            _check_rows(dialect, rows),
            _client(dialect, DATABASE),
            CLIENT[dialect],
        )
        groups.append(
            Group(
                dialect,
                [Case(f"{name}: load the file", client, n, path, dialect, check)],
                Case(f"{name}: streamer restore", _streamer(key, url, client), n,
                     server=dialect, check=check),
                TARGET_DB_RATIO,
                f"{name + ':':12} streamer restore {{ratio:.3f}}x the time of loading the file",
                # What the client reading a pipe instead of the file costs by itself.
                Case(f"{name}: cat file into the client (the pipe alone)",
                     ["sh", "-c", 'cat "$0" | "$@"', str(path), *client], n, server=dialect,
                     check=check),
            )
        )  # fmt: skip
    if CONSUMER in only:
        groups.append(_consumer_group(workdir, key, *stored["mysql"]))
    return groups


def _consumer_group(workdir: Path, key: Path, plain: Path, rows: int, url: str) -> Group:
    """sha256sum alone, the streamer alone, and the two together (on the MariaDB dump)."""
    digest = hashlib.file_digest(plain.open("rb"), "sha256").hexdigest()
    out = workdir / "sha256sum.out"
    n = plain.stat().st_size
    sha256sum = ["sh", "-c", 'sha256sum > "$0"', str(out)]

    def check_digest() -> None:
        got = out.read_text().split()[0]
        out.unlink()
        if got != digest:
            raise SystemExit(f"sha256sum saw {got}, not the dump's {digest}")

    return Group(
        CONSUMER,
        [
            Case("sha256sum < file (consumer alone)", sha256sum, n, plain, check=check_digest),
            Case("streamer alone (into cat >/dev/null)",
                 _streamer(key, url, ["sh", "-c", "cat >/dev/null"]), n),
        ],
        Case("streamer restore into sha256sum", _streamer(key, url, sha256sum), n,
             check=check_digest),
        TARGET_CONSUMER_RATIO,
        f"{'sha256sum:':12} streamer into sha256sum {{ratio:.3f}}x the slower of the two alone",
        # The cheapest producer there is: what feeding sha256sum through a pipe while another
        # process runs costs by itself, whoever writes the pipe.
        Case("cat file into sha256sum (the pipe alone)",
             ["sh", "-c", 'cat "$1" | sha256sum > "$0"', str(out), str(plain)], n,
             check=check_digest),
        Case("a boto3 client's first byte of the object", _first_byte(url), 0),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="8 MB, one round (CI smoke run)")
    parser.add_argument("--size", help="dump size per database (default 1G, or 8M with --quick)")
    parser.add_argument("--rounds", type=int, help="rounds; the median is kept (default 3)")
    parser.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        help="run only this comparison (repeatable; default: all of them)",
    )
    args = parser.parse_args()
    size = parse_size(args.size or ("8M" if args.quick else "1G"))
    rounds = args.rounds or (1 if args.quick else 3)
    servers = {
        "mysql": _find_server(("mariadbd", "mysqld")),
        "postgres": _find_server(("postgres", "postmaster")),
    }
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-restore-db-") as tmp:
        workdir = Path(tmp)
        env = _compiled(s3_env(ROOT), workdir)
        moto = start_moto(env, BUCKET)
        try:
            groups = _setup(workdir, env, size, set(args.only or GROUPS))
            print(
                f"dumps: {size / 1e6:.0f} MB, stored with gzip + age in S3 (moto at "
                f"{env['AWS_ENDPOINT_URL_S3']}); {rounds} round(s)",
                flush=True,
            )
            for number in range(rounds):
                for group in groups:
                    for case in group.cases(number):
                        case.runs.append(measure(case, env, moto.pid, servers))
                        print(f"  {case.name}: {case.runs[-1].seconds:.2f} s", flush=True)
        finally:
            moto.terminate()
            moto.wait()
            for dialect in DIALECTS:
                with contextlib.suppress(SystemExit):
                    _sql(dialect, f"DROP DATABASE IF EXISTS {DATABASE}")
    report(groups, load_before, quick=args.quick)


def report(groups: list[Group], load_before: tuple[float, ...], *, quick: bool) -> None:
    print()
    print("| run | seconds (median) | MB/s | CPU s: command tree | moto | database server |")
    print("|---|---|---|---|---|---|")
    cases = [case for group in groups for case in group.cases(0)]
    for case in cases:
        run = case.median()
        server = f"{run.server_cpu_seconds:.1f}" if case.server else "-"
        rate = f"{case.plaintext_bytes / 1e6 / run.seconds:.0f}" if case.plaintext_bytes else "-"
        print(
            f"| {case.name} | {run.seconds:.2f} | {rate} "
            f"| {run.cpu_seconds:.1f} | {run.moto_cpu_seconds:.1f} | {server} |"
        )
    print(f"\n({os.cpu_count()} CPUs; load average {_load(load_before)} before, "
          f"{_load(os.getloadavg())} after)")  # fmt: skip
    ratios = {}
    for group in groups:
        ratios[group.name] = group.ratio()
        print(group.claim.format(ratio=ratios[group.name]), f"(target <= {group.target:.2f}x)")
        if group.reference is not None:
            pipe = group.reference.median().seconds
            print(
                f"{'':12} {group.reference.name}: {pipe / group.slowest():.3f}x the slower "
                f"alone; the streamer's run {group.combined.median().seconds / pipe:.3f}x it"
            )
            ratios[f"{group.name}-pipe"] = pipe / group.slowest()
            if group.first_byte is not None:
                floor = _cpu_floor(group) / group.slowest()
                print(
                    f"{'':12} the floor on {os.cpu_count()} cores ({group.first_byte.name}, "
                    f"then the runs' work on every core): {floor:.3f}x the slower alone"
                )
                ratios[f"{group.name}-floor"] = floor
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    runs = {case.name: [asdict(r) for r in case.runs] for case in cases}
    (out / ("restore_db_quick.json" if quick else "restore_db.json")).write_text(
        json.dumps({"ratios": ratios, "runs": runs}, indent=2)
    )
    if quick:
        print("(quick run: a smoke test on a small dump; the targets apply to the full run)")


def _cpu_floor(group: Group) -> float:
    """The least time, in seconds, the combined run of ``group`` can take on this machine.

    Nothing reaches the consumer before the object's first byte, the bare S3 client's time
    to it (its CPU, and moto's, are the start-up every restore from S3 pays). After it, the
    work of the runs alone remains: the consumer's CPU, the streamer's beyond that start-up
    (its reader ``cat`` included: that is what reading the pipe costs whoever reads it) and
    moto's, spread over every core at once, and never less than the consumer's own time alone
    (``baselines[0]``)."""
    assert group.first_byte is not None
    first = group.first_byte.median()
    work = sum(
        case.median().cpu_seconds + case.median().moto_cpu_seconds for case in group.baselines
    )
    work -= first.cpu_seconds + first.moto_cpu_seconds
    return first.seconds + max(group.baselines[0].median().seconds, work / (os.cpu_count() or 1))


def _load(load: tuple[float, ...]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


if __name__ == "__main__":
    main()
