"""The backup metrics, from the catalogue: what the alerts in argo/monitoring/ are written against."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from generator.controller.metrics import CatalogueCollector, Snapshot
from tests.controller.bodies import BASE, run, schedule, storage

T0 = BASE.timestamp()
HOUR = 3600.0


def scrape(snapshot: Snapshot | None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The exposition text a scrape gets, parsed back: (name, labels) -> value."""
    registry = CollectorRegistry()
    registry.register(CatalogueCollector(lambda: snapshot))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def of(samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> dict:
    return {
        dict(labels).get("schedule", dict(labels).get("storage")): value
        for (n, labels), value in samples.items()
        if n == f"backup_operator_{name}"
    }


def test_the_newest_successful_run_of_each_schedule() -> None:
    runs = [
        run("nightly-1", "Succeeded", 0, size=100, finished=1),
        run("nightly-2", "Succeeded", 24, size=200, finished=24.25),  # the newest success
        run("nightly-3", "Failed", 48),  # newer, but failed
        run("nightly-4", "Running", 72),
        run("weekly-1", "Succeeded", 10, schedule_name="weekly", size=7, finished=12),
    ]
    samples = scrape(Snapshot(schedules=[schedule(), schedule("weekly")], runs=runs))
    assert of(samples, "schedule_last_success_timestamp_seconds") == {
        "nightly": T0 + 24.25 * HOUR,
        "weekly": T0 + 12 * HOUR,
    }
    assert of(samples, "schedule_last_success_size_bytes") == {"nightly": 200, "weekly": 7}
    assert of(samples, "schedule_last_success_duration_seconds") == {
        "nightly": 0.25 * HOUR,
        "weekly": 2 * HOUR,
    }
    assert of(samples, "schedule_interval_seconds") == {"nightly": 86400.0, "weekly": 86400.0}


def test_runs_by_schedule_and_phase() -> None:
    runs = [
        run("a", "Succeeded", 0),
        run("b", "Succeeded", 1),
        run("c", "Failed", 2),
        run("d", None, 3),  # just created: no status yet
        run("mine", "Error", 4, schedule_name=None),
    ]
    samples = scrape(Snapshot(schedules=[schedule()], runs=runs))
    counted = {
        (dict(labels)["schedule"], dict(labels)["phase"]): value
        for (name, labels), value in samples.items()
        if name == "backup_operator_runs"
    }
    assert counted == {
        ("nightly", "Succeeded"): 2,
        ("nightly", "Failed"): 1,
        ("nightly", "Pending"): 1,
        ("", "Error"): 1,
    }


def test_a_schedule_that_never_succeeded_has_no_last_success_but_its_creation_time() -> None:
    samples = scrape(Snapshot(schedules=[schedule()], runs=[run("x", "Failed", 0)]))
    assert of(samples, "schedule_last_success_timestamp_seconds") == {}
    assert of(samples, "schedule_created_timestamp_seconds") == {"nightly": T0 - 24 * HOUR}


def test_storage_readiness_and_size() -> None:
    full = storage(
        "full", status={"conditions": [{"type": "Ready", "status": "True"}], "sizeInBytes": 4096}
    )
    samples = scrape(
        Snapshot(storages=[full, storage("down", ready="False"), storage("new", ready=None)])
    )
    assert of(samples, "storage_ready") == {"full": 1.0, "down": 0.0, "new": 0.0}
    assert of(samples, "storage_size_bytes") == {"full": 4096}


def test_a_schedule_that_never_fires_has_no_interval() -> None:
    samples = scrape(Snapshot(schedules=[schedule(schedule="0 0 31 2 *")]))
    assert of(samples, "schedule_interval_seconds") == {}
    assert "nightly" in of(samples, "schedule_created_timestamp_seconds")


def test_nothing_before_the_controller_started() -> None:
    assert scrape(None) == {}
