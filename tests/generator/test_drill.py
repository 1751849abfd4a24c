"""Restore drills rendered: :func:`render_drill` (the Workflow of one finished backup's drill)
and the ``<schedule>-verify`` WorkflowTemplate, which share one template; every object passes
Argo's schemas, and the integrity drill's command line, run as Argo would run it, verifies a
real backup in S3 and refuses a wrong digest.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from generator.errors import ValidationFailed
from generator.generate import argo_dict, validate_texts
from generator.models import (
    LABEL_RUN,
    LABEL_SCHEDULE,
    LABEL_STORAGE,
    LABEL_VERIFIES,
    LABEL_VERIFY_LEVEL,
    LABEL_VERIFY_OF,
    BackupRun,
    BackupSchedule,
    BackupStorage,
    Verify,
)
from generator.render import (
    DRILL_OUTPUTS,
    DRILL_TEMPLATE,
    SHA256_PARAMETER,
    RenderOptions,
    render_drill,
    render_schedule,
)
from generator.render.pod import IDENTITY_DIR, IDENTITY_FILE, OUTPUTS_DIR
from generator.yamlio import dump_documents
from streamer.cli import main as streamer
from streamer.contract import FAILURE_OUTPUTS, OUTPUTS, Failure, Flag, Output, Subcommand
from tests.conftest import AgeKey
from tests.generator.conftest import GOLDEN, run_validate_argo

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _schedule(case: str) -> tuple[BackupStorage, BackupSchedule]:
    source = GOLDEN / f"{case}.in.yaml"
    storage, schedule = validate_texts([(source.name, source.read_text())])
    assert isinstance(storage, BackupStorage)
    assert isinstance(schedule, BackupSchedule)
    return storage, schedule


def _verify(schedule: BackupSchedule) -> Verify:
    assert schedule.spec.verify is not None
    return schedule.spec.verify


def _run(schedule: BackupSchedule, status: dict[str, Any] | None = None) -> BackupRun:
    """A finished run of the schedule, as the controller records it."""
    name = schedule.metadata.name
    return BackupRun.model_validate(
        {
            "metadata": {
                "name": f"{name}-1732233600",
                "namespace": schedule.metadata.namespace,
                "labels": {LABEL_SCHEDULE: name},
            },
            "spec": schedule.spec.template.spec.model_dump(by_alias=True, exclude_none=True),
            "status": status
            if status is not None
            else {"phase": "Succeeded", "path": "db/2026-11-22.sql.gz.age", "sha256": SHA},
        }
    )


def _drill(case: str, options: RenderOptions | None = None, **status: Any) -> dict[str, Any]:
    storage, schedule = _schedule(case)
    run = _run(schedule, status or None)
    workflow = render_drill(
        run,
        _verify(schedule),
        storage,
        options or RenderOptions(),
        name=f"{run.metadata.name}-verify",
        schedule=schedule.metadata.name,
    )
    return argo_dict(workflow)


def _template(doc: dict[str, Any]) -> dict[str, Any]:
    (template,) = doc["spec"]["templates"]
    assert template["name"] == DRILL_TEMPLATE == doc["spec"]["entrypoint"]
    result: dict[str, Any] = template
    return result


def _parameters(doc: dict[str, Any]) -> dict[str, str | None]:
    return {p["name"]: p.get("value") for p in doc["spec"]["arguments"]["parameters"]}


def _options(args: list[str]) -> list[str]:
    return args[: args.index(Flag.END_OF_OPTIONS)] if Flag.END_OF_OPTIONS in args else args


# --- the Workflow of one drill -----------------------------------------------------------------


@pytest.mark.parametrize("case", ["verify-integrity", "verify-restore"])
def test_a_drill_is_labelled_with_its_schedule_run_storage_and_level(case: str) -> None:
    doc = _drill(case)
    storage, schedule = _schedule(case)
    run = f"{schedule.metadata.name}-1732233600"
    labels = {
        LABEL_SCHEDULE: schedule.metadata.name,
        LABEL_STORAGE: storage.metadata.name,
        LABEL_VERIFY_OF: schedule.metadata.name,
        LABEL_VERIFIES: run,
        LABEL_VERIFY_LEVEL: _verify(schedule).level,
    }
    assert doc["metadata"]["labels"] == labels
    assert LABEL_RUN not in doc["metadata"]["labels"]  # not one of the run's own Workflows
    assert labels.items() <= _template(doc)["metadata"]["labels"].items()
    assert doc["metadata"]["name"] == f"{run}-verify"
    assert doc["metadata"]["namespace"] == schedule.metadata.namespace
    annotations = doc["metadata"]["annotations"]
    assert annotations["workflows.argoproj.io/title"] == f"Verify {run}"
    assert annotations["workflows.argoproj.io/description"].startswith("Restore drill of a backup")
    assert doc["spec"]["activeDeadlineSeconds"] == _verify(schedule).deadline_seconds


def test_an_integrity_drill_runs_the_streamer_alone_on_the_runs_key_and_digest() -> None:
    doc = _drill("verify-integrity")
    assert _parameters(doc) == {"path": "db/2026-11-22.sql.gz.age", SHA256_PARAMETER: SHA}
    template = _template(doc)
    assert "sidecars" not in template
    assert "podSpecPatch" not in template
    args = template["container"]["args"]
    assert Flag.END_OF_OPTIONS not in args
    assert Flag.POD not in args
    assert args[:2] == [Subcommand.VERIFY, "s3://db-backups/{{workflow.parameters.path}}"]
    assert args[args.index("--sha256") + 1] == "{{workflow.parameters.sha256}}"
    assert args[args.index(Flag.IDENTITY) + 1] == f"{IDENTITY_DIR}/{IDENTITY_FILE}"
    assert args[args.index(Flag.OUTPUTS) + 1] == OUTPUTS_DIR
    mounts = {v["name"]: v["mountPath"] for v in template["container"]["volumeMounts"]}
    volumes = {v["name"]: v for v in doc["spec"]["volumes"]}
    assert mounts.keys() == volumes.keys()
    (identity,) = [v for v in volumes.values() if "secret" in v]
    assert identity["secret"] == {
        "secretName": "backup-age-identity",
        "items": [{"key": "identity.txt", "path": IDENTITY_FILE}],
    }


def test_a_run_without_a_recorded_digest_is_drilled_without_comparing_one() -> None:
    doc = _drill("verify-integrity", phase="Succeeded", path="db/old.sql.gz.age")
    assert _parameters(doc)[SHA256_PARAMETER] == ""


def test_a_restore_drill_restores_into_the_scratch_pod_never_the_runs() -> None:
    doc = _drill("verify-restore")
    # the restore compares the digest too, before its command sees the end of its input
    assert set(_parameters(doc)) == {"path", SHA256_PARAMETER}
    assert _parameters(doc)["path"] == "db/2026-11-22.sql.gz.age"
    template = _template(doc)
    args = template["container"]["args"]
    assert args[args.index("--sha256") + 1] == "{{workflow.parameters.sha256}}"
    assert [c["name"] for c in template["sidecars"]] == ["scratch"]
    assert template["sidecars"][0]["command"] == ["docker-entrypoint.sh", "mysqld"]
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "mysql-drill"
    args = template["container"]["args"]
    assert args[0] == Subcommand.RESTORE
    assert args[args.index(Flag.CONTAINER) + 1] == "scratch"
    assert args[args.index(Flag.END_OF_OPTIONS) + 1 :][:2] == ["/bin/sh", "-c"]
    assert "mysql.development" not in " ".join(args)  # the backed-up database's host
    # The restore action's deadline, and the drill's whole one.
    assert args[args.index(Flag.DEADLINE) + 1] == "900"
    assert template["activeDeadlineSeconds"] == 960
    assert doc["spec"]["activeDeadlineSeconds"] == 1800


def test_the_check_is_one_flag_per_argument_escaped_for_kubernetes() -> None:
    args = _options(_template(_drill("verify-restore"))["container"]["args"])
    checks = [args[i + 1] for i, a in enumerate(args) if a == Flag.CHECK]
    assert checks == [
        "sh",
        "-c",
        "test $$(mysql -h 127.0.0.1 -N -e 'select count(*) from orders' backend_db) -gt 0",
    ]
    assert Flag.CHECK_CONTAINER not in args  # the restore's own container


def _restore_drill(verify: dict[str, Any]) -> dict[str, Any]:
    storage, schedule = _schedule("verify-restore")
    raw = schedule.model_dump(by_alias=True, exclude_none=True)
    raw["spec"]["verify"] = verify
    changed = BackupSchedule.model_validate(raw)
    run = _run(changed)
    return argo_dict(
        render_drill(
            run, _verify(changed), storage, RenderOptions(), name="d", schedule="mysql-daily"
        )
    )


def test_a_check_in_another_container_names_it() -> None:
    _storage, schedule = _schedule("verify-restore")
    verify = _verify(schedule).model_dump(by_alias=True, exclude_none=True)
    verify["template"]["spec"]["containers"].append(
        {"name": "client", "image": "mysql:8.3.0", "command": ["sleep", "1d"]}
    )
    verify["check"] = {"container": "client", "command": ["true"]}
    doc = _restore_drill(verify)
    args = _options(_template(doc)["container"]["args"])
    assert args[args.index(Flag.CHECK_CONTAINER) + 1] == "client"
    assert args[args.index(Flag.CHECK) + 1] == "true"
    assert (
        "checks it in container `client`"
        in doc["metadata"]["annotations"]["workflows.argoproj.io/description"]
    )


def test_a_restore_drill_without_its_own_action_uses_the_runs() -> None:
    _storage, schedule = _schedule("verify-restore")
    verify = _verify(schedule).model_dump(by_alias=True, exclude_none=True)
    verify["template"]["spec"]["containers"][0]["name"] = "mysql"
    verify.pop("restore")
    verify.pop("check")
    doc = _restore_drill(verify)
    args = _template(doc)["container"]["args"]
    assert args[args.index(Flag.CONTAINER) + 1] == "mysql"
    run_restore = schedule.spec.template.spec.restore
    assert run_restore is not None
    assert args[args.index(Flag.END_OF_OPTIONS) + 1 :] == [
        *run_restore.command,
        *(run_restore.args or []),
    ]
    assert Flag.CHECK not in args
    assert [c["command"] for c in _template(doc)["sidecars"]] == [
        ["docker-entrypoint.sh", "mysqld"]
    ]


def test_a_drill_reads_uncompressed_data_as_stored() -> None:
    storage, schedule = _schedule("verify-integrity")
    raw = _run(schedule).model_dump(by_alias=True, exclude_none=True)
    raw["spec"]["compression"] = {"algorithm": "none"}
    run = BackupRun.model_validate(raw)
    doc = argo_dict(
        render_drill(run, _verify(schedule), storage, RenderOptions(), name="d", schedule="s")
    )
    args = _template(doc)["container"]["args"]
    assert args[args.index(Flag.COMPRESSION) + 1] == "none"


def test_every_outcome_is_a_global_output() -> None:
    parameters = _template(_drill("verify-integrity"))["outputs"]["parameters"]
    assert [p["globalName"] for p in parameters] == list(DRILL_OUTPUTS)
    assert set(DRILL_OUTPUTS) == {*OUTPUTS, *FAILURE_OUTPUTS}


def test_drills_rendered_for_the_controller_read_its_copy_of_the_credentials(
    tmp_path: Path,
) -> None:
    options = RenderOptions(catalogue=True, credentials_secret="s3-backup-credentials")
    docs = [_drill(case, options) for case in ("verify-integrity", "verify-restore")]
    for doc in docs:
        assert "finalizers" not in doc["metadata"]  # the catalogue holds only backups
        refs = {
            e["valueFrom"]["secretKeyRef"]["name"]
            for e in _template(doc)["container"]["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert refs == {"s3-backup-credentials"}
    path = tmp_path / "drills.argo.yaml"
    path.write_text(dump_documents(docs))
    done = run_validate_argo([path])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 checked, 0 failed" in done.stdout, done.stdout


@pytest.mark.parametrize("case", ["verify-integrity", "verify-restore"])
def test_the_workflow_template_runs_the_same_drill(case: str) -> None:
    storage, schedule = _schedule(case)
    objects = [argo_dict(o) for o in render_schedule(schedule, storage, RenderOptions())]
    (template,) = [o for o in objects if o["metadata"]["name"].endswith("-verify")]
    assert template["kind"] == "WorkflowTemplate"
    assert LABEL_VERIFIES not in template["metadata"]["labels"]
    text = template["metadata"]["annotations"]["workflows.argoproj.io/description"]
    assert (
        f"argo submit --from workflowtemplate/{schedule.metadata.name}-verify -p path=KEY" in text
    )
    assert f"-p {SHA256_PARAMETER}=HEX" in text
    drill = _drill(case)
    # One template: the run's drill differs only by its label and the parameters' values.
    ours, theirs = _template(template), _template(drill)
    theirs["metadata"]["labels"].pop(LABEL_VERIFIES)
    assert ours == theirs
    assert set(_parameters(template)) == set(_parameters(drill))
    assert _parameters(template)["path"] is None  # required


def test_a_schedule_without_verify_renders_no_drill() -> None:
    source = GOLDEN / "seed.in.yaml"
    storage, schedule = validate_texts([(source.name, source.read_text())])
    assert isinstance(schedule, BackupSchedule)
    assert isinstance(storage, BackupStorage)
    names = [o.metadata.name for o in render_schedule(schedule, storage, RenderOptions())]
    assert names == ["mysql-daily", "mysql-daily-restore"]


# --- refused -----------------------------------------------------------------------------------


def test_a_run_with_no_stored_object_has_nothing_to_drill() -> None:
    with pytest.raises(ValidationFailed) as failed:
        _drill("verify-integrity", phase="Running")
    ((label, path, message),) = [(p.obj, p.path, p.message) for p in failed.value.problems]
    assert (label, path) == ("BackupRun/postgres-nightly-1732233600", "status.path")
    assert "nothing to verify yet" in message


def test_an_encrypted_run_without_its_key_cannot_be_drilled() -> None:
    storage, schedule = _schedule("verify-integrity")
    raw = _run(schedule).model_dump(by_alias=True, exclude_none=True)
    del raw["spec"]["encryption"]["decryptionKey"]
    run = BackupRun.model_validate(raw)
    with pytest.raises(ValidationFailed) as failed:
        render_drill(run, _verify(schedule), storage, RenderOptions(), name="d", schedule="s")
    ((label, path, message),) = [(p.obj, p.path, p.message) for p in failed.value.problems]
    assert (label, path) == (f"BackupRun/{run.metadata.name}", "spec.encryption.decryptionKey")
    assert "a drill decrypts the backup; add the Secret key holding the age identity" in message


def test_a_restore_drill_without_a_restore_action_says_where_to_add_one() -> None:
    storage, schedule = _schedule("verify-restore")
    raw = _run(schedule).model_dump(by_alias=True, exclude_none=True)
    del raw["spec"]["restore"]
    run = BackupRun.model_validate(raw)
    verify = _verify(schedule).model_copy(update={"restore": None})
    with pytest.raises(ValidationFailed) as failed:
        render_drill(run, verify, storage, RenderOptions(), name="d", schedule="mysql-daily")
    ((label, path, message),) = [(p.obj, p.path, p.message) for p in failed.value.problems]
    assert (label, path) == ("BackupSchedule/mysql-daily", "spec.verify.restore")
    assert "add one here, or to the schedule's template" in message


# --- the command line, run ---------------------------------------------------------------------


def _as_run_by_argo(doc: dict[str, Any], outputs: Path, key: AgeKey) -> list[str]:
    """The drill's streamer arguments as the streamer receives them here: Argo's parameters
    resolved, the Secret file and the outputs directory where this test keeps them."""
    values = _parameters(doc)
    args = []
    for arg in _template(doc)["container"]["args"]:
        arg = re.sub(r"\{\{workflow\.parameters\.(\w+)\}\}", lambda m: str(values[m[1]]), arg)
        arg = arg.replace(f"{IDENTITY_DIR}/{IDENTITY_FILE}", str(key.identity_file))
        args.append(arg.replace(OUTPUTS_DIR, str(outputs)))
    return args


def _stored_backup(bucket: str, endpoint: str, key: AgeKey, tmp_path: Path) -> tuple[str, str]:
    """A real encrypted, compressed backup in the bucket: (key, sha256)."""
    outputs = tmp_path / "backup-outputs"
    argv = [Subcommand.BACKUP, f"s3://{bucket}/db/drilled.sql.gz.age", Flag.RECIPIENT]
    argv += [key.recipient, Flag.ENDPOINT_URL, endpoint, Flag.PATH_STYLE, Flag.OUTPUTS]
    argv += [str(outputs), Flag.END_OF_OPTIONS, sys.executable, "-c", "print('INSERT 1;' * 999)"]
    result = CliRunner().invoke(streamer, argv)
    assert result.exit_code == 0, result.output
    return (outputs / Output.PATH).read_text(), (outputs / Output.SHA256).read_text()


def _drill_of(bucket: str, endpoint: str, key: AgeKey, path: str, sha256: str) -> dict[str, Any]:
    storage, schedule = _schedule("verify-integrity")
    raw = storage.model_dump(by_alias=True, exclude_none=True)
    raw["spec"]["parameters"] = {
        "bucket": bucket,
        "endpoint": endpoint,
        "region": "us-east-1",
        "s3ForcePathStyle": "true",
    }
    local = BackupStorage.model_validate(raw)
    run = _run(schedule, {"phase": "Succeeded", "path": path, "sha256": sha256})
    return argo_dict(
        render_drill(run, _verify(schedule), local, RenderOptions(), name="d", schedule="s")
    )


def test_the_integrity_drill_as_rendered_verifies_a_real_backup(
    bucket: str, s3_env: str, age_key: AgeKey, tmp_path: Path
) -> None:
    path, sha256 = _stored_backup(bucket, s3_env, age_key, tmp_path)
    outputs = tmp_path / "drill-outputs"
    args = _as_run_by_argo(_drill_of(bucket, s3_env, age_key, path, sha256), outputs, age_key)
    result = CliRunner().invoke(streamer, args)
    assert result.exit_code == 0, result.output
    written = {p.name: p.read_text() for p in outputs.iterdir()}
    # Every success output the drill declares is written (the failure ones are not).
    assert set(written) == set(DRILL_OUTPUTS) - set(FAILURE_OUTPUTS)
    assert written[Output.SHA256] == sha256
    assert written[Output.PLAINTEXT_BYTES] == str(len(("INSERT 1;" * 999 + "\n").encode()))
    assert (written[Output.ENCRYPTED], written[Output.COMPRESSED]) == ("true", "true")


def test_the_integrity_drill_as_rendered_fails_on_a_digest_not_recorded(
    bucket: str, s3_env: str, age_key: AgeKey, tmp_path: Path
) -> None:
    path, sha256 = _stored_backup(bucket, s3_env, age_key, tmp_path)
    recorded = hashlib.sha256(b"another backup").hexdigest()
    outputs = tmp_path / "drill-outputs"
    args = _as_run_by_argo(_drill_of(bucket, s3_env, age_key, path, recorded), outputs, age_key)
    result = CliRunner().invoke(streamer, args)
    assert result.exit_code != 0
    assert f"has SHA-256 {sha256}, not the expected {recorded}" in result.output
    assert not (outputs / Output.SHA256).exists()


def test_a_failed_drill_says_why_in_its_failure_outputs(
    bucket: str, s3_env: str, age_key: AgeKey, tmp_path: Path
) -> None:
    path, _ = _stored_backup(bucket, s3_env, age_key, tmp_path)
    recorded = hashlib.sha256(b"another backup").hexdigest()
    outputs = tmp_path / "drill-outputs"
    args = _as_run_by_argo(_drill_of(bucket, s3_env, age_key, path, recorded), outputs, age_key)
    assert CliRunner().invoke(streamer, args).exit_code != 0
    written = {p.name: p.read_text() for p in outputs.iterdir()} if outputs.is_dir() else {}
    assert set(written) == set(FAILURE_OUTPUTS), "the streamer wrote no failure outputs"
    assert written[Output.FAILURE] == Failure.DIGEST_MISMATCH
    assert recorded in written[Output.FAILURE_MESSAGE]
