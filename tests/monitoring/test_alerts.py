"""The alert rules of argo/monitoring/, checked and unit-tested with Prometheus's own promtool.

Each case feeds promtool the series the controller exports (names from
:mod:`generator.controller.metrics`) and says when which alert fires, with what text: the 1.5x
period of a daily and of a weekday schedule, a schedule that never succeeded, the static
fallback, restore drills missed, never verified and just verified, a storage that is not Ready,
and reconcile errors that are not temporary.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from generator.controller import reconciler
from generator.controller.metrics import Snapshot, families
from tests.conftest import require_tool
from tests.controller.bodies import run, schedule, storage

RULES = Path(__file__).resolve().parents[2] / "argo" / "monitoring" / "prometheusrule.yaml"
NIGHTLY = {"namespace": "db", "schedule": "nightly"}
DAY = 86400
#: promtool's series notation: a value repeated for 5 days of one-minute samples.
FIVE_DAYS = 5 * 24 * 60


def rule_file(tmp_path: Path) -> Path:
    """The PrometheusRule's groups as a plain Prometheus rules file."""
    resource = yaml.safe_load(RULES.read_text())
    assert resource["kind"] == "PrometheusRule"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": resource["spec"]["groups"]}))
    return path


def series(name: str, value: float | str, **labels: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in (labels or NIGHTLY).items())
    values = value if isinstance(value, str) else f"{value}x{FIVE_DAYS}"
    return {"series": f"backup_operator_{name}{{{inner}}}", "values": values}


def quiet(name: str, at: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": name, "exp_alerts": []}


def fires(name: str, at: str, labels: dict[str, str], summary: str, description: str) -> dict:
    expected = {
        "exp_labels": {**labels},
        "exp_annotations": {"summary": summary, "description": description},
    }
    return {"eval_time": at, "alertname": name, "exp_alerts": [expected]}


def promtool_test(
    tmp_path: Path, input_series: list[dict[str, str]], *cases: dict, interval: str = "1m"
) -> None:
    """Run ``cases`` on ``input_series`` (one sample an ``interval``, and one evaluation)."""
    promtool = require_tool("promtool")
    spec = {
        "rule_files": [rule_file(tmp_path).name],
        "evaluation_interval": interval,
        "tests": [
            {"interval": interval, "input_series": input_series, "alert_rule_test": [*cases]}
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(spec))
    done = subprocess.run(
        [promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_are_valid(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    done = subprocess.run(
        [promtool, "check", "rules", str(rule_file(tmp_path))], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_a_daily_backup_is_missed_after_a_day_and_a_half(tmp_path: Path) -> None:
    promtool_test(
        tmp_path,
        [
            series("schedule_last_success_timestamp_seconds", 0),
            series("schedule_interval_seconds", DAY),
        ],
        quiet("BackupMissing", "35h"),
        quiet("BackupMissing", "36h5m"),  # over 1.5x, but not yet for 10 minutes
        fires(
            "BackupMissing",
            "37h",
            {"severity": "critical", **NIGHTLY},
            "No successful backup of db/nightly within 1.5x its period",
            "The newest successful BackupRun of BackupSchedule db/nightly completed 1d 13h 0m 0s "
            "ago. See kubectl get backupruns -n db -l backup-operator.io/schedule=nightly",
        ),
        quiet("BackupNeverSucceeded", "37h"),
        quiet("BackupMissingStatic", "37h"),
    )


def test_a_weekday_schedule_may_skip_the_weekend(tmp_path: Path) -> None:
    promtool_test(
        tmp_path,
        [
            series("schedule_last_success_timestamp_seconds", 0),
            series("schedule_interval_seconds", 3 * DAY),
        ],
        quiet("BackupMissing", "96h"),
        quiet("BackupMissingStatic", "96h"),
    )


def test_a_new_backup_clears_the_alert(tmp_path: Path) -> None:
    # Succeeded at 0, then again 40 hours in: the alert fires in between and stops after.
    last = f"0x{40 * 60} {40 * 3600}x{FIVE_DAYS - 40 * 60}"
    promtool_test(
        tmp_path,
        [
            series("schedule_last_success_timestamp_seconds", last),
            series("schedule_interval_seconds", DAY),
        ],
        quiet("BackupMissing", "41h"),
    )


def test_a_schedule_that_never_succeeded(tmp_path: Path) -> None:
    promtool_test(
        tmp_path,
        [
            series("schedule_created_timestamp_seconds", 0),
            series("schedule_interval_seconds", DAY),
        ],
        quiet("BackupNeverSucceeded", "30h"),
        fires(
            "BackupNeverSucceeded",
            "40h",
            {"severity": "critical", **NIGHTLY},
            "BackupSchedule db/nightly has never succeeded",
            "BackupSchedule db/nightly was created 1d 16h 0m 0s ago and none of its runs "
            "succeeded.",
        ),
        quiet("BackupMissing", "40h"),
    )


def test_the_static_fallback_for_a_schedule_without_a_period(tmp_path: Path) -> None:
    never_fires = {"namespace": "db", "schedule": "leap"}
    promtool_test(
        tmp_path,
        [
            series("schedule_last_success_timestamp_seconds", 0, **never_fires),
            series("schedule_created_timestamp_seconds", 0, **never_fires),
        ],
        quiet("BackupMissingStatic", "35h"),
        fires(
            "BackupMissingStatic",
            "37h",
            {"severity": "critical", **never_fires},
            "No successful backup of db/leap within 36h",
            "BackupSchedule db/leap has a schedule that never fires, and no successful backup "
            "for 1d 13h 0m 0s.",
        ),
        quiet("BackupMissing", "37h"),
    )


DRILL = "BackupRestoreDrillMissing"
#: A schedule whose backups are on time: the drill alert must not lean on the backup series.
FRESH_BACKUPS = [
    series("schedule_last_success_timestamp_seconds", f"0+60x{FIVE_DAYS}"),
    series("schedule_interval_seconds", DAY),
]


def drill_missing(at: str, age: str) -> dict:
    return fires(
        DRILL,
        at,
        {"severity": "warning", **NIGHTLY},
        "No successful restore drill of db/nightly within 1.5x its drill period",
        f"No restore drill of BackupSchedule db/nightly has succeeded in the last {age}. Find the "
        "newest drilled run in kubectl get backupruns -n db -l backup-operator.io/schedule=nightly "
        "and read why its drill failed in the Verified condition of kubectl describe backuprun "
        "-n db <run>.",
    )


def test_a_daily_drill_is_missed_after_a_day_and_a_half(tmp_path: Path) -> None:
    promtool_test(
        tmp_path,
        [
            *FRESH_BACKUPS,
            series("schedule_created_timestamp_seconds", 0),
            series("schedule_last_verified_timestamp_seconds", 0),
            series("schedule_verify_interval_seconds", DAY),
        ],
        quiet(DRILL, "35h"),
        quiet(DRILL, "36h5m"),  # over 1.5x, but not yet for 10 minutes
        drill_missing("37h", "1d 13h 0m 0s"),
        quiet("BackupMissing", "37h"),
    )


def test_a_weekly_drill_may_wait_a_week_and_a_half(tmp_path: Path) -> None:
    eleven_days = 11 * 24 * 12  # five-minute samples: a minute's would take seconds to evaluate
    promtool_test(
        tmp_path,
        [
            series("schedule_created_timestamp_seconds", f"0x{eleven_days}"),
            series("schedule_last_verified_timestamp_seconds", f"0x{eleven_days}"),
            series("schedule_verify_interval_seconds", f"{7 * DAY}x{eleven_days}"),
        ],
        quiet(DRILL, "250h"),  # 10 days and 10 hours: a daily drill would have fired long ago
        drill_missing("253h", "10d 13h 0m 0s"),
        interval="5m",
    )


def test_a_schedule_never_verified_counts_from_its_creation(tmp_path: Path) -> None:
    verified = {"namespace": "db", "schedule": "verified"}
    promtool_test(
        tmp_path,
        [
            *FRESH_BACKUPS,
            series("schedule_created_timestamp_seconds", 0),
            series("schedule_verify_interval_seconds", DAY),
            series("schedule_created_timestamp_seconds", 0, **verified),
            series("schedule_last_verified_timestamp_seconds", 30 * 3600, **verified),
            series("schedule_verify_interval_seconds", DAY, **verified),
        ],
        quiet(DRILL, "30h"),
        drill_missing("40h", "1d 16h 0m 0s"),  # only nightly: "verified" had a drill at 30h
        quiet("BackupNeverSucceeded", "40h"),
    )


def test_a_first_drill_clears_the_alert_of_a_schedule_never_verified(tmp_path: Path) -> None:
    # Created at 0, first verified 99 hours in: the alert fires before and stops at once after.
    first = f"_x{99 * 60} {99 * 3600}x{FIVE_DAYS - 99 * 60}"
    promtool_test(
        tmp_path,
        [
            series("schedule_created_timestamp_seconds", 0),
            series("schedule_last_verified_timestamp_seconds", first),
            series("schedule_verify_interval_seconds", DAY),
        ],
        drill_missing("98h", "4d 2h 0m 0s"),
        quiet(DRILL, "100h"),
    )


def test_a_new_drill_clears_the_alert(tmp_path: Path) -> None:
    last = f"0x{40 * 60} {40 * 3600}x{FIVE_DAYS - 40 * 60}"
    promtool_test(
        tmp_path,
        [
            series("schedule_created_timestamp_seconds", 0),
            series("schedule_last_verified_timestamp_seconds", last),
            series("schedule_verify_interval_seconds", DAY),
        ],
        drill_missing("39h", "1d 15h 0m 0s"),
        quiet(DRILL, "41h"),
    )


def test_no_drill_alert_without_a_drill_period(tmp_path: Path) -> None:
    # Drills not due (none set, suspended) or never firing export no interval: nothing to miss.
    promtool_test(
        tmp_path,
        [
            *FRESH_BACKUPS,
            series("schedule_created_timestamp_seconds", 0),
            series("schedule_last_verified_timestamp_seconds", 0),
        ],
        quiet(DRILL, "100h"),
    )


def test_a_storage_that_stays_unready(tmp_path: Path) -> None:
    promtool_test(
        tmp_path,
        [
            series("storage_ready", "0x30", storage="minio"),
            series("storage_ready", "1x30", storage="other"),
        ],
        quiet("BackupStorageNotReady", "10m"),
        fires(
            "BackupStorageNotReady",
            "20m",
            {"severity": "critical", "storage": "minio"},
            "BackupStorage minio is not Ready",
            "The bucket of BackupStorage minio cannot be reached with its credentials; see "
            "kubectl describe backupstorage minio.",
        ),
    )


def test_refused_reconciles_warn_and_temporary_ones_do_not(tmp_path: Path) -> None:
    name = "reconcile_errors_total"
    promtool_test(
        tmp_path,
        [
            series(name, "0+1x60", kind="BackupSchedule", error="permanent"),
            series(name, "0+5x60", kind="BackupRun", error="temporary"),
        ],
        fires(
            "BackupOperatorReconcileErrors",
            "40m",
            {"severity": "warning", "kind": "BackupSchedule"},
            "backup-operator cannot reconcile some BackupSchedule objects",
            "See the Synced condition and the ReconcileError Events of the BackupSchedule "
            "objects, and the controller's log.",
        ),
    )


def test_every_metric_the_rules_use_is_exported() -> None:
    used = set(re.findall(r"backup_operator_\w+", RULES.read_text()))
    drilled = schedule(
        verify={"schedule": "0 3 * * 0", "level": "restore"},
        status={"lastVerifiedTime": "2024-05-01T03:00:00Z", "lastVerifiedRun": "nightly-1"},
    )
    full = Snapshot(
        schedules=[drilled],
        runs=[run("nightly-1", "Succeeded", 0, size=1)],
        storages=[storage(status={"sizeInBytes": 1})],
    )
    exported = {family.name for family in families(full)}
    exported |= {f"{reconciler.RECONCILE_ERRORS._name}_total"}
    assert used <= exported, f"not exported: {sorted(used - exported)}"
