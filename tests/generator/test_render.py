"""Details of the mapping the golden files show only by example."""

from __future__ import annotations

import base64
import json
import tomllib
from typing import Any

import pytest
import yaml

from generator.checks import check_cron
from generator.generate import render_texts
from generator.render import RenderOptions, k8s_literal
from generator.render.pod import (
    DEADLINE_MARGIN_SECONDS,
    SIDECAR_GRACE_SECONDS,
    STREAMER_COMMAND,
)
from tests.generator.conftest import GOLDEN, ROOT


def rendered(case: str) -> list[dict[str, Any]]:
    source = GOLDEN / f"{case}.in.yaml"
    return list(yaml.safe_load_all(render_texts([(case, source.read_text())], RenderOptions())))


def _template(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"].get("workflowSpec", doc["spec"])
    result: dict[str, Any] = spec["templates"][0]
    return result


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain", "plain", id="plain"),
        pytest.param("${HOME}", "${HOME}", id="shell-braces"),
        pytest.param("$(date)", "$$(date)", id="command-substitution"),
        pytest.param("pid $$", "pid $$$", id="shell-pid"),
        pytest.param("$$(x)", "$$$$(x)", id="both"),
        pytest.param("cost $5", "cost $5", id="lone-dollar"),
    ],
)
def test_k8s_literal_survives_kubernetes_expansion(text: str, expected: str) -> None:
    assert k8s_literal(text) == expected
    assert _kubernetes_expand(expected) == text


def _kubernetes_expand(text: str) -> str:
    """Kubernetes' $(VAR) expansion with no variables defined (k8s.io/kubernetes expansion)."""
    out, i = "", 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text) and text[i + 1] == "$":
            out, i = out + "$", i + 2
        else:
            out, i = out + text[i], i + 1
    return out


def test_seed_path_template_reaches_the_streamer_intact() -> None:
    args = _template(rendered("seed")[0])["container"]["args"]
    value = _flag(args, "--path-template")
    assert value.startswith("base64:")  # Argo would reject the unknown {{ now | date … }} tag
    decoded = base64.b64decode(value.removeprefix("base64:")).decode()
    assert decoded == '/backups/mysql-{{ now | date "2006.01.02-15:04:05" }}.sql'
    assert args[args.index("--") + 1 :] == [
        "/bin/sh",
        "-c",
        'mysqldump -h "${HOSTNAME}" -u "${USERNAME}" "-p${PASSWORD}" "${DATABASE}"',
    ]


def test_literal_path_is_passed_as_is() -> None:
    args = _template(rendered("backup-only")[0])["container"]["args"]
    assert _flag(args, "--path-template") == "redis/dump.rdb"


def test_streamer_runs_in_its_own_pod_and_execs_into_the_container() -> None:
    template = _template(rendered("seed")[0])
    # Argo's executor would otherwise look the entrypoint up in the image's registry.
    assert template["container"]["command"] == ["streamer"]
    args = template["container"]["args"]
    assert args[:2] == ["backup", "s3://backups/"]
    assert _flag(args, "--pod") == "$(POD_NAME)"
    assert _flag(args, "--container") == "mysql"
    assert [s["name"] for s in template["sidecars"]] == ["mysql"]


@pytest.mark.parametrize(
    ("case", "compression", "level"),
    [
        pytest.param("seed", "gzip", None, id="absent-is-gzip-at-the-default-level"),
        pytest.param("suspended-timezone", "gzip", None, id="empty-is-gzip"),
        pytest.param("compression-only", "gzip", "-2", id="gzip-with-level"),
        pytest.param("encryption-only", "none", None, id="none-turns-it-off"),
    ],
)
def test_compression_is_gzip_unless_turned_off(
    case: str, compression: str, level: str | None
) -> None:
    doc = rendered(case)[0]
    args = _template(doc)["container"]["args"]
    assert _flag(args, "--compression") == compression
    assert (_flag(args, "--level") if "--level" in args else None) == level
    description = doc["metadata"]["annotations"]["workflows.argoproj.io/description"]
    assert ("uncompressed" in description) == (compression == "none")


def test_a_restore_does_not_gunzip_what_was_stored_uncompressed() -> None:
    text = (GOLDEN / "seed.in.yaml").read_text()
    text = text.replace("      retainPolicy: Delete\n", "      compression: {algorithm: none}\n")
    (_, template) = yaml.safe_load_all(render_texts([("case", text)], RenderOptions()))
    args = _template(template)["container"]["args"]
    assert _flag(args, "--compression") == "none"


def test_deadline_maps_to_both_deadlines() -> None:
    template = _template(rendered("seed")[0])
    assert _flag(template["container"]["args"], "--deadline") == "300"
    assert template["activeDeadlineSeconds"] == 300 + DEADLINE_MARGIN_SECONDS


def test_storage_parameters_map_to_flags_and_secret_env() -> None:
    main = _template(rendered("backup-only")[0])["container"]
    assert _flag(main["args"], "--endpoint-url") == "https://rgw.storage.example.com"
    assert "--path-style" in main["args"]
    assert "--insecure" not in main["args"]
    env = {e["name"]: e["valueFrom"] for e in main["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "ceph-s3", "key": "access-key-id"}}
    assert env["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]["key"] == "secret-access-key"


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("true", None), ("false", "when_required")]
)
def test_part_checksums_false_sets_the_sdks_switch(value: str | None, expected: str | None) -> None:
    text = (GOLDEN / "backup-only.in.yaml").read_text()
    docs = list(yaml.safe_load_all(text))
    for doc in docs:
        if doc["kind"] == "BackupStorage" and value is not None:
            doc["spec"]["parameters"]["partChecksums"] = value
    source = yaml.safe_dump_all(docs)
    out = list(yaml.safe_load_all(render_texts([("checksums", source)], RenderOptions())))
    env = {e["name"]: e.get("value") for e in _template(out[0])["container"]["env"]}
    assert env.get("AWS_REQUEST_CHECKSUM_CALCULATION") == expected


def test_pod_settings_are_carried_over() -> None:
    cron = rendered("pod-template")[0]
    spec = cron["spec"]["workflowSpec"]
    template = _template(cron)
    assert [v["name"] for v in spec["volumes"]] == ["data", "scratch", "backup-operator-outputs"]
    assert spec["imagePullSecrets"] == [{"name": "registry"}]
    assert template["initContainers"][0]["name"] == "wait-for-volume"
    assert template["tolerations"][0]["key"] == "dedicated"
    assert template["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert template["securityContext"]["fsGroup"] == 1000
    assert template["serviceAccountName"] == "files-backup"
    assert template["sidecars"][0]["resources"]["requests"]["cpu"] == "1"
    assert json.loads(template["podSpecPatch"]) == {
        "enableServiceLinks": False,
        "runtimeClassName": "gvisor",
        "terminationGracePeriodSeconds": 2,
    }
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "files-backup"


def test_grace_period_is_short_by_default() -> None:
    patch = json.loads(_template(rendered("seed")[0])["podSpecPatch"])
    assert patch == {"terminationGracePeriodSeconds": SIDECAR_GRACE_SECONDS}


def test_schedule_fields_map_to_the_cron_workflow() -> None:
    spec = rendered("suspended-timezone")[0]["spec"]
    assert spec["schedules"] == ["30 2 * * 1-5"]
    assert spec["timezone"] == "Europe/Berlin"
    assert spec["suspend"] is True
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 600
    assert spec["successfulJobsHistoryLimit"] == 3
    assert spec["failedJobsHistoryLimit"] == 1
    assert spec["workflowMetadata"]["labels"]["team"] == "data"
    assert spec["workflowMetadata"]["annotations"]["example.com/owner"] == "data-team"


def test_restore_template_requires_a_path() -> None:
    template = rendered("seed")[1]
    assert template["metadata"]["name"] == "mysql-daily-restore"
    (parameter,) = template["spec"]["arguments"]["parameters"]
    assert parameter["name"] == "path"
    assert "value" not in parameter
    args = _template(template)["container"]["args"]
    assert args[:2] == ["restore", "s3://backups/{{workflow.parameters.path}}"]


def test_outputs_and_metrics() -> None:
    template = _template(rendered("seed")[0])
    outputs = [p["name"] for p in template["outputs"]["parameters"]]
    assert outputs == ["path", "url", "size", "sizeInBytes", "sha256"]
    metrics = {p["name"]: p for p in template["metrics"]["prometheus"]}
    assert set(metrics) == {
        "backup_operator_backup_duration_seconds",
        "backup_operator_backup_total",
        "backup_operator_backup_size_bytes",
    }
    labels = {x["key"] for x in metrics["backup_operator_backup_total"]["labels"]}
    assert labels == {"schedule", "storage", "status"}


def test_every_generated_object_is_labelled_and_titled() -> None:
    for case in sorted(p.name.removesuffix(".in.yaml") for p in GOLDEN.glob("*.in.yaml")):
        for doc in rendered(case):
            labels = doc["metadata"]["labels"]
            assert "backup-operator.io/storage" in labels
            assert {"backup-operator.io/schedule", "backup-operator.io/run"} & labels.keys()
            assert "workflows.argoproj.io/title" in doc["metadata"]["annotations"]
            assert "workflows.argoproj.io/description" in doc["metadata"]["annotations"]


@pytest.mark.parametrize(
    "text",
    ["0 0 * * *", "*/15 * * * *", "0 9-17 * * 1-5", "0 0 1,15 * *", "@daily", "@every 1h30m",
     "0 0 ? * 0", "59 23 31 12 6"],
)  # fmt: skip
def test_good_cron(text: str) -> None:
    assert check_cron(text) is None


def test_the_command_is_the_streamer_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[STREAMER_COMMAND[0]] == "streamer.cli:main"


def test_quantities_may_be_numbers() -> None:
    text = (
        (GOLDEN / "pod-template.in.yaml").read_text().replace("sizeLimit: 1Gi", "sizeLimit: 1024")
    )
    (cron, _) = yaml.safe_load_all(render_texts([("case", text)], RenderOptions()))
    volumes = cron["spec"]["workflowSpec"]["volumes"]
    assert volumes[1]["emptyDir"] == {"sizeLimit": "1024"}


def test_a_size_limit_may_be_a_fraction() -> None:
    text = (GOLDEN / "pod-template.in.yaml").read_text().replace("sizeLimit: 1Gi", "sizeLimit: 0.5")
    (cron, _) = yaml.safe_load_all(render_texts([("case", text)], RenderOptions()))
    assert cron["spec"]["workflowSpec"]["volumes"][1]["emptyDir"] == {"sizeLimit": "0.5"}
