"""Bad input, by name: each mistake gives exit status 1 and a message naming the field, never a
traceback. The cases start from the SEED.md objects and change one thing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from generator.cli import main
from generator.yamlio import dump_documents
from tests.generator.conftest import GOLDEN, load_yaml

SEED = load_yaml(GOLDEN / "seed.in.yaml")
RUN_SPEC = "spec.template.spec"


def seed(change: Callable[[dict[str, Any], dict[str, Any]], None]) -> str:
    """The SEED.md objects as YAML after ``change(storage, schedule)``."""
    storage, schedule = copy.deepcopy(SEED)
    change(storage, schedule)
    return dump_documents([storage, schedule])


def _spec(s: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = s["spec"]["template"]["spec"]
    return result


def _container(s: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = _spec(s)["template"]["spec"]["containers"][0]
    return result


def _only_restore(s: dict[str, Any]) -> None:
    """The seed schedule's template as a restore-only BackupRun."""
    s["kind"] = "BackupRun"
    s["spec"] = _spec(s)
    del s["spec"]["backup"]


CASES = [
    ("bad-cron", lambda st, s: s["spec"].update(schedule="every day at noon"),
     "spec.schedule", "is not a cron schedule"),
    ("cron-minute-out-of-range", lambda st, s: s["spec"].update(schedule="61 * * * *"),
     "spec.schedule", "minute '61' is out of range 0-59"),
    ("cron-range-backwards", lambda st, s: s["spec"].update(schedule="0 9-5 * * *"),
     "spec.schedule", "runs backwards"),
    ("cron-zero-step", lambda st, s: s["spec"].update(schedule="*/0 * * * *"),
     "spec.schedule", "step"),
    ("unknown-timezone", lambda st, s: s["spec"].update(timeZone="Mars/Olympus_Mons"),
     "spec.timeZone", "is not an IANA time zone"),
    ("timezone-is-a-region", lambda st, s: s["spec"].update(timeZone="America"),
     "spec.timeZone", "'America' is not an IANA time zone"),
    ("bad-recipient", lambda st, s: _spec(s).update(encryption={
        "recipients": ["age1notakey"], "decryptionKey": {"name": "k", "key": "k"}}),
     f"{RUN_SPEC}.encryption.recipients[0]", "age1notakey"),
    ("no-recipients", lambda st, s: _spec(s).update(encryption={"recipients": []}),
     f"{RUN_SPEC}.encryption.recipients", "at least 1 item"),
    ("unknown-storage", lambda st, s: _spec(s)["storage"].update(name="aws"),
     f"{RUN_SPEC}.storage.name", "BackupStorage 'aws' is not in the input; storages: minio"),
    ("level-too-high", lambda st, s: _spec(s).update(compression={"level": 10}),
     f"{RUN_SPEC}.compression.level", "less than or equal to 9"),
    ("level-too-low", lambda st, s: _spec(s).update(compression={"level": -3}),
     f"{RUN_SPEC}.compression.level", "greater than or equal to -2"),
    ("unknown-compression", lambda st, s: _spec(s).update(compression={"algorithm": "zstd"}),
     f"{RUN_SPEC}.compression.algorithm", "'gzip' or 'none'"),
    ("level-without-compression", lambda st, s: _spec(s).update(
        compression={"algorithm": "none", "level": 6}),
     f"{RUN_SPEC}.compression.level", "level applies to gzip only"),
    ("container-without-command", lambda st, s: _container(s).pop("command"),
     f"{RUN_SPEC}.template.spec.containers[0].command",
     'add e.g. command: ["sleep", "1d"]'),
    ("path-syntax-error", lambda st, s: _spec(s)["storage"].update(path="db-{{ now | date "),
     f"{RUN_SPEC}.storage.path", "syntax error"),
    ("path-sandbox-escape", lambda st, s: _spec(s)["storage"].update(
        path="{{ now.__class__.__mro__[1].__subclasses__() }}"),
     f"{RUN_SPEC}.storage.path", "is not allowed"),
    ("path-unknown-variable", lambda st, s: _spec(s)["storage"].update(path="{{ secret }}"),
     f"{RUN_SPEC}.storage.path", "'secret' is undefined"),
    ("path-escapes-prefix", lambda st, s: _spec(s)["storage"].update(path="../{{ run }}"),
     f"{RUN_SPEC}.storage.path", "'..'"),
    ("action-container-unknown", lambda st, s: _spec(s)["backup"].update(container="mysql2"),
     f"{RUN_SPEC}.backup.container",
     "\"mysql2\" is not a container of the template; containers: mysql".replace('"', "'")),
    ("restore-container-unknown", lambda st, s: _spec(s)["restore"].update(container="db"),
     f"{RUN_SPEC}.restore.container", "'db' is not a container of the template"),
    ("no-action", lambda st, s: [_spec(s).pop("backup"), _spec(s).pop("restore")],
     RUN_SPEC, "a run needs backup or restore"),
    ("schedule-without-backup", lambda st, s: _spec(s).pop("backup"),
     RUN_SPEC, "a schedule's template needs a backup action"),
    ("encrypted-restore-without-key", lambda st, s: _spec(s).update(encryption={
        "recipients": ["age1hncdsrzparr8chnhjwgazvfp50gt80w6q7cgqfv6asjls5fmkuuqrd8rcm"]}),
     f"{RUN_SPEC}.encryption.decryptionKey", "needs the Secret key holding the age identity"),
    ("reserved-container-name", lambda st, s: [
        _container(s).update(name="main"), _spec(s)["backup"].update(container="main"),
        _spec(s)["restore"].update(container="main")],
     f"{RUN_SPEC}.template.spec.containers[0].name", "reserved by Argo"),
    ("duplicate-container", lambda st, s: _spec(s)["template"]["spec"]["containers"].append(
        copy.deepcopy(_container(s))),
     f"{RUN_SPEC}.template.spec.containers[1].name", "duplicate container name 'mysql'"),
    ("reserved-init-container-name", lambda st, s: _spec(s)["template"]["spec"].update(
        initContainers=[{"name": "init", "image": "busybox:1.36"}]),
     f"{RUN_SPEC}.template.spec.initContainers[0].name", "reserved by Argo"),
    ("init-container-named-like-a-container", lambda st, s: _spec(s)["template"]["spec"].update(
        initContainers=[{"name": "mysql", "image": "busybox:1.36"}]),
     f"{RUN_SPEC}.template.spec.initContainers[0].name", "duplicate container name 'mysql'"),
    ("unknown-spec-field", lambda st, s: _spec(s).update(retention=3),
     f"{RUN_SPEC}.retention", "unknown field"),
    ("unknown-container-field", lambda st, s: _container(s).update(imagePullPolicyy="Always"),
     f"{RUN_SPEC}.template.spec", "unknown field(s) containers[0].imagePullPolicyy"),
    ("unsupported-pod-field", lambda st, s: _spec(s)["template"]["spec"].update(
        ephemeralContainers=[]),
     f"{RUN_SPEC}.template.spec.ephemeralContainers", "unknown field"),
    ("restart-always", lambda st, s: _spec(s)["template"]["spec"].update(restartPolicy="Always"),
     f"{RUN_SPEC}.template.spec.restartPolicy", "'Never'"),
    ("bad-retain-policy", lambda st, s: _spec(s).update(retainPolicy="Keep"),
     f"{RUN_SPEC}.retainPolicy", "'Retain' or 'Delete'"),
    ("bad-concurrency-policy", lambda st, s: s["spec"].update(concurrencyPolicy="Sometimes"),
     "spec.concurrencyPolicy", "'Allow', 'Forbid' or 'Replace'"),
    ("negative-history-limit", lambda st, s: s["spec"].update(failedRunsHistoryLimit=-1),
     "spec.failedRunsHistoryLimit", "greater than or equal to 0"),
    ("empty-retention", lambda st, s: s["spec"].update(retention={}),
     "spec.retention", "retention needs at least one of keepLast, keepHourly, keepDaily"),
    ("negative-retention", lambda st, s: s["spec"].update(retention={"keepDaily": -1}),
     "spec.retention.keepDaily", "greater than or equal to 0"),
    ("zero-deadline", lambda st, s: _spec(s)["backup"].update(deadlineSeconds=0),
     f"{RUN_SPEC}.backup.deadlineSeconds", "greater than or equal to 1"),
    ("deadline-not-a-number", lambda st, s: _spec(s)["backup"].update(deadlineSeconds="5m"),
     f"{RUN_SPEC}.backup.deadlineSeconds", "valid integer"),
    ("argo-variable-in-command", lambda st, s: _spec(s)["backup"].update(
        args=["echo {{workflow.name}}"]),
     f"{RUN_SPEC}.backup.args[0]", "Argo Workflows would try to resolve"),
    ("schedule-name-too-long", lambda st, s: s["metadata"].update(name="a" * 53),
     "metadata.name", "at most 52 characters"),
    ("bad-object-name", lambda st, s: s["metadata"].update(name="MySQL_Daily"),
     "metadata.name", "'MySQL_Daily' is not a valid name"),
    ("storage-without-bucket", lambda st, s: st["spec"]["parameters"].pop("bucket"),
     "spec.parameters.bucket", "required field is missing"),
    ("storage-bad-bucket", lambda st, s: st["spec"]["parameters"].update(bucket="My_Bucket"),
     "spec.parameters.bucket", "is not a valid S3 bucket name"),
    ("storage-unknown-parameter", lambda st, s: st["spec"]["parameters"].update(acl="public"),
     "spec.parameters.acl", "unknown field"),
    ("storage-insecure-not-boolean", lambda st, s: st["spec"]["parameters"].update(
        insecure="yes"),
     "spec.parameters.insecure", "Input should be 'true' or 'false'"),
    ("storage-endpoint-not-url", lambda st, s: st["spec"]["parameters"].update(
        endpoint="minio:9000"),
     "spec.parameters.endpoint", "is not an http:// or https:// URL"),
    ("storage-type", lambda st, s: st["spec"].update(type="gcs"),
     "spec.type", "'s3'"),
    ("storage-credentials-incomplete", lambda st, s: st["spec"].update(
        credentials={"name": "x"}),
     "spec.credentials.namespace", "required field is missing"),
    ("restore-only-with-template-path", lambda st, s: _only_restore(s),
     "spec.storage.path", "a restore-only run restores one existing object"),
    ("wrong-api-version", lambda st, s: s.update(apiVersion="backup-operator.io/v1beta1"),
     "apiVersion", "must be backup-operator.io/v1, not 'backup-operator.io/v1beta1'"),
    ("unknown-kind", lambda st, s: s.update(kind="BackupPolicy"),
     "kind", "unknown kind; expected one of BackupStorage, BackupSchedule, BackupRun"),
]  # fmt: skip


def _invoke(text: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["validate", "-f", "-"], input=text)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stderr


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize(("change", "path", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_is_refused_with_path_and_message(
    change: Callable[[dict[str, Any], dict[str, Any]], None], path: str, message: str
) -> None:
    code, stderr = _invoke(seed(change))
    assert code == 1, stderr
    lines = [line for line in stderr.splitlines() if message in line]
    assert lines, stderr
    assert any(f": {path}: " in line for line in lines), stderr


def test_a_broken_storage_is_not_also_reported_as_missing() -> None:
    _, stderr = _invoke(seed(lambda st, s: st["spec"].update(type="gcs")))
    assert "spec.type" in stderr
    assert "is not in the input" not in stderr


def test_every_problem_is_reported_not_only_the_first() -> None:
    def two(st: dict[str, Any], s: dict[str, Any]) -> None:
        s["spec"]["schedule"] = "61 * * * *"
        _spec(s)["backup"]["container"] = "mysql2"

    code, stderr = _invoke(seed(two))
    assert code == 1
    assert "spec.schedule" in stderr
    assert f"{RUN_SPEC}.backup.container" in stderr


def test_the_message_names_the_object_and_the_document() -> None:
    _, stderr = _invoke(seed(lambda st, s: _spec(s)["backup"].update(container="mysql2")))
    assert (
        "-#1: BackupSchedule/mysql-daily: spec.template.spec.backup.container: 'mysql2' is not "
        "a container of the template; containers: mysql"
    ) in stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("a: [1, 2\n", "not valid YAML", id="yaml-syntax"),
        pytest.param("- just\n- a list\n", "expected a Kubernetes object", id="not-a-mapping"),
    ],
)
def test_unreadable_input(text: str, message: str) -> None:
    code, stderr = _invoke(text)
    assert code == 1
    assert message in stderr


def test_a_yaml_error_does_not_quote_the_line() -> None:
    # `cat *.yaml | backup-gen validate -f -` may well include a Secret.
    text = 'apiVersion: v1\nkind: Secret\nstringData:\n  password: "hunter2\n'
    code, stderr = _invoke(text)
    assert code == 1
    assert "not valid YAML: while scanning a quoted scalar (line 4, column 13)" in stderr
    assert "hunter2" not in stderr
