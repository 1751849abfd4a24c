"""``backup-gen`` through click's CliRunner: exit codes, output, and help with examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from generator.cli import main
from generator.generate import crd_texts
from tests.generator.conftest import GOLDEN

SEED = GOLDEN / "seed.in.yaml"


def gen(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), input=input)
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("command", [[], ["render"], ["validate"], ["crds"]], ids=str)
def test_help_shows_examples(command: list[str]) -> None:
    result = gen(*command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert "backup-gen " in result.stdout


def test_validate_ok() -> None:
    result = gen("validate", "-f", str(SEED))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "ok: 2 object(s): BackupStorage/minio, BackupSchedule/mysql-daily\n"


def test_render_reads_several_files_and_stdin(tmp_path: Path) -> None:
    storage, schedule = SEED.read_text().split("\n---\n")
    (tmp_path / "storage.yaml").write_text(storage)
    result = gen("render", "-f", str(tmp_path / "storage.yaml"), "-f", "-", input=schedule)
    assert result.exit_code == 0, result.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout)]
    assert kinds == ["CronWorkflow", "WorkflowTemplate"]
    assert result.stdout == (GOLDEN / "seed.argo.yaml").read_text()


def test_render_options() -> None:
    result = gen(
        "render",
        "-f",
        str(SEED),
        "--namespace",
        "db",
        "--image",
        "registry.local/backup-operator:dev",
        "--service-account",
        "backups",
    )
    assert result.exit_code == 0, result.stderr
    for doc in yaml.safe_load_all(result.stdout):
        assert doc["metadata"]["namespace"] == "db"
        spec = doc["spec"].get("workflowSpec", doc["spec"])
        assert spec["serviceAccountName"] == "backups"
        assert spec["templates"][0]["container"]["image"] == "registry.local/backup-operator:dev"


def test_render_restore_needs_a_finished_backup() -> None:
    run = (GOLDEN / "both-with-restore.in.yaml").read_text().split("\nstatus:")[0]
    result = gen("render", "-f", "-", input=run)
    assert result.exit_code == 1
    assert "BackupRun/postgres-before-upgrade: status.path: nothing to restore yet" in (
        result.stderr
    )


def test_render_restore_flag_adds_the_restore_workflow() -> None:
    text = (GOLDEN / "both-with-restore.in.yaml").read_text()
    text = text.replace('    backup-operator.io/restore: "true"\n', "")
    plain = gen("render", "-f", "-", input=text)
    asked = gen("render", "-f", "-", "--restore", input=text)
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(plain.stdout)]
    assert names == ["postgres-before-upgrade"]
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(asked.stdout)]
    assert names == ["postgres-before-upgrade", "postgres-before-upgrade-restore"]


def test_render_refuses_bad_input_with_exit_1() -> None:
    text = SEED.read_text().replace("container: mysql\n", "container: mysql2\n", 1)
    result = gen("render", "-f", "-", input=text)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "spec.template.spec.backup.container: 'mysql2' is not a container" in result.stderr


def test_missing_file_is_a_usage_error() -> None:
    result = gen("validate", "-f", "/nonexistent/backups.yaml")
    assert result.exit_code == 2
    assert "No such file or directory" in result.stderr


def test_a_file_that_is_not_text_is_a_usage_error(tmp_path: Path) -> None:
    binary = tmp_path / "backups.yaml"
    binary.write_bytes(b"apiVersion: \xd0\x00\xff\n")
    result = gen("validate", "-f", str(binary))
    assert result.exit_code == 2, result.exception
    assert "backups.yaml: not UTF-8 text" in result.stderr


def test_crds_prints_all_three() -> None:
    result = gen("crds")
    assert result.exit_code == 0
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(result.stdout)]
    assert names == [
        "backupstorages.backup-operator.io",
        "backupschedules.backup-operator.io",
        "backupruns.backup-operator.io",
    ]


def test_crds_writes_a_directory(tmp_path: Path) -> None:
    result = gen("crds", "-o", str(tmp_path / "crds"))
    assert result.exit_code == 0
    written = {p.name: p.read_text() for p in (tmp_path / "crds").iterdir()}
    assert written == crd_texts()


def test_crds_into_a_path_that_cannot_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = gen("crds", "-o", str(tmp_path / "file" / "crds"))
    assert result.exit_code == 1, result.exception
    assert f"cannot write the CRDs into {tmp_path / 'file' / 'crds'}: Not a directory" in (
        result.stderr
    )
