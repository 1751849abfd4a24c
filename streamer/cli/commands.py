"""The ``streamer`` command group and its three commands: parse, call one pipeline function.

See :mod:`streamer.cli` for how a run ends (exit codes, messages, signals).
"""

from __future__ import annotations

import gc
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from streamer import __version__
from streamer.cli.options import (
    check_options,
    compression_auto,
    exec_options,
    identity_option,
    lock_options,
    object_lock,
    parse_vars,
    report_options,
    resolve_key,
    restore_check,
    restore_options,
    runner,
    s3_settings,
    sha256_option,
    storage_options,
)
from streamer.cli.signals import stop_on_signals
from streamer.contract import DEFAULT_LEVEL, MAX_LEVEL, MIN_LEVEL, Flag, Subcommand
from streamer.errors import ConfigError, StreamerError
from streamer.pipeline import BackupOptions, Stop, Summary
from streamer.pipeline import backup as run_backup
from streamer.pipeline import restore as run_restore
from streamer.pipeline import verify as run_verify
from streamer.pipeline.outcome import Action, completed_note, failure_outputs
from streamer.stages import age
from streamer.storage import S3Settings, Storage, open_storage

__all__ = ["main"]

_LOG = logging.getLogger("streamer")


def _emit(summary: Summary, as_json: bool, outputs: Path | None) -> None:
    if outputs is not None:
        try:
            outputs.mkdir(parents=True, exist_ok=True)
            for name, value in summary.outputs().items():
                (outputs / name).write_text(value)
        except OSError as exc:
            raise StreamerError(
                f"{summary.url} is done, but its summary cannot be written to --outputs "
                f"{str(outputs)!r}: {exc.strerror or exc}"
            ) from exc
    if as_json:
        click.echo(json.dumps(summary.as_json(), indent=2))


def _emit_failure(error: StreamerError, outputs: Path | None) -> None:
    """Write why the run failed into ``--outputs DIR`` (FAILURE_OUTPUTS).

    Never raised from: the run's own error, and its exit code, are what the user must get, so
    a failure to write is logged.
    """
    if outputs is None:
        return
    try:
        outputs.mkdir(parents=True, exist_ok=True)
        for name, value in failure_outputs(error).items():
            (outputs / name).write_text(value, encoding="utf-8")
    except OSError as exc:
        _LOG.error(
            "why the run failed cannot be written to --outputs %r: %s",
            str(outputs),
            exc.strerror or exc,
        )


class _AsProgram:
    """Context object: this invocation is the process, which exits when the command returns."""


class _Streamer(click.Group):
    """The command group. Called as a program (the console script, ``python -m streamer``),
    its process ignores SIGTERM and SIGINT from a run's start until it exits; called
    in-process through :meth:`main` (as click's CliRunner does), the handlers are restored."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("obj", _AsProgram())
        # A program's modules live until it exits: keep them out of the garbage collector's
        # rounds, which re-scan them while boto3 builds its client and again at exit (~0.1 s
        # of CPU, a fifth of a restore's start-up, measured by bench/restore_db.py).
        gc.freeze()
        return self.main(*args, **kwargs)


def _open_storage(url: str, settings: S3Settings) -> tuple[Storage, str]:
    """:func:`~streamer.storage.open_storage`; in a program, then freeze what it built.

    The S3 client and botocore's models live until the program exits, like its modules: out
    of the collector's rounds they are not re-scanned while the stream runs (~0.1 s of CPU
    per GB restored from S3, measured side by side). Called in-process, nothing is frozen.
    """
    storage, key = open_storage(url, settings)
    if click.get_current_context().find_object(_AsProgram) is not None:
        gc.freeze()
    return storage, key


def _run(action: Callable[[Stop], Summary], what: Action, outputs: Path | None) -> NoReturn:
    """Run ``action``; turn every expected failure into one line and an exit code, and with
    ``--outputs DIR``, into the files that say why it failed.

    A signal that arrived once the outcome was settled leaves a complete run: exit 0, saying so.
    """
    stop = Stop()
    as_program = click.get_current_context().find_object(_AsProgram) is not None
    outcome: Summary | StreamerError
    with stop_on_signals(stop, restore=not as_program):
        try:
            outcome = action(stop)
        except StreamerError as exc:
            outcome = exc
    # Every signal that arrived until now has been handed to ``stop``.
    if isinstance(outcome, StreamerError):
        _emit_failure(outcome, outputs)
        click.echo(f"streamer: error: {outcome}", err=True)
        code = outcome.exit_code
    else:
        code = 0
        if stop.signal is not None:
            click.echo(f"streamer: {completed_note(what, stop.signal, outcome.url)}", err=True)
    sys.exit(code)


def _configure_logging(level: int) -> None:
    """Log to the current stderr through our own handler (replaced on every invocation)."""
    logger = logging.getLogger("streamer")
    for handler in [h for h in logger.handlers if getattr(h, "_streamer_cli", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s"))
    handler._streamer_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


@click.group(
    cls=_Streamer,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="streamer")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
@click.option("-q", "--quiet", is_flag=True, help="Log only warnings and errors.")
def main(verbose: bool, quiet: bool) -> None:
    """Stream a command's output through gzip and age into S3, and back into a command.

    \b
    Examples:
      streamer backup s3://backups/db.sql.gz -r age1… -- pg_dump -h db app
      streamer restore s3://backups/db.sql.gz -i key.txt -- psql -h db app
      streamer verify s3://backups/db.sql.gz -i key.txt
    """
    _configure_logging(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    if verbose:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    else:
        for noisy in ("botocore", "boto3", "urllib3", "kubernetes", "websocket"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


@main.command(Subcommand.BACKUP)
@click.argument("dest")
@click.argument("command", nargs=-1, required=True)
@click.option(
    Flag.COMPRESSION, type=click.Choice(["gzip", "none"]), default="gzip", show_default=True
)
@click.option(
    Flag.LEVEL,
    type=click.IntRange(MIN_LEVEL, MAX_LEVEL),
    default=DEFAULT_LEVEL,
    show_default=True,
    help="gzip level: -1 default (fast, ~gzip -6 size), 0 store, 1 fastest … 9 smallest, "
    "-2 Huffman only.",
)
@click.option(
    "-r",
    Flag.RECIPIENT,
    "recipients",
    multiple=True,
    metavar="KEY",
    help="Encrypt to this age1…/ssh-ed25519/ssh-rsa key (repeatable).",
)
@click.option(
    "-R",
    "--recipients-file",
    "recipients_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Encrypt to every key in FILE.",
)
@click.option(
    Flag.PATH_TEMPLATE,
    metavar="TEMPLATE",
    help="Render the key as DEST/TEMPLATE (Jinja2, sandboxed; Sprig's date layouts work). "
    "A value starting with base64: is decoded first.",
)
@click.option(
    Flag.VAR,
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    help="Template variable (namespace, run, schedule, workflow).",
)
@lock_options
@exec_options
@storage_options
@report_options
def backup(dest: str, command: tuple[str, ...], **kw: Any) -> None:
    """Run COMMAND and store its stdout at DEST (s3://BUCKET/KEY or file:///PATH).

    The object appears only if the whole stream was stored and COMMAND exited 0; otherwise the
    upload is aborted and nothing is left behind. SIGTERM or SIGINT before the object is stored
    aborts it (exit 128 + N); one that arrives after leaves the stored backup (exit 0).

    With Object Lock (the bucket must have it enabled), the object is written locked, its lock
    read back once stored; a backup stored but not locked keeps the object, reports
    locked=false and fails.

    \b
    Examples:
      streamer backup s3://backups/app.sql.gz -r age1… -- mysqldump -h db app
      streamer backup s3://backups/mysql --json \\
          --path-template 'mysql-{{ now | date "2006.01.02-15:04:05" }}.sql' \\
          -- sh -c 'mysqldump -h "$HOST" app'
      streamer backup file:///tmp/etc.tar --compression none -- tar c /etc
      streamer backup s3://locked-backups/app.sql.gz --object-lock-mode COMPLIANCE \\
          --object-lock-days 30 -- pg_dump -h db app
    """
    try:
        recipients = [age.parse_recipient(r) for r in kw.pop("recipients")]
        for path in kw.pop("recipients_files"):
            recipients += age.read_recipients_file(path)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint=Flag.RECIPIENT) from exc
    settings = s3_settings(kw, object_lock(kw))
    options = BackupOptions(
        compress=kw.pop("compression") == "gzip",
        level=kw.pop("level"),
        recipients=recipients,
        deadline=kw.pop("deadline"),
    )
    variables = parse_vars(kw.pop("variables"), kw.get("namespace"))
    template = kw.pop("path_template")
    as_json, outputs = kw.pop("as_json"), kw.pop("outputs")

    def action(stop: Stop) -> Summary:
        storage, key = _open_storage(dest, settings)
        key = resolve_key(storage, key, template, variables)
        summary = run_backup(runner(kw), command, storage, key, options, stop)
        _emit(summary, as_json, outputs)
        summary.check_lock()  # once the outputs say it: a stored backup not locked fails
        return summary

    _run(action, Action.BACKUP, outputs)


@main.command(Subcommand.RESTORE)
@click.argument("source")
@click.argument("command", nargs=-1, required=True)
@identity_option
@compression_auto
@sha256_option
@check_options
@exec_options
@storage_options
@report_options
def restore(source: str, command: tuple[str, ...], **kw: Any) -> None:
    """Feed the backup at SOURCE to COMMAND's stdin; exit with COMMAND's exit code.

    Encryption and compression are detected from the data. If the stream fails (wrong key,
    corrupted or truncated object) the command is stopped and the restore fails.

    With --check, once COMMAND exited 0 and the whole backup was read and verified, the check
    command runs (in the Pod's --check-container, default --container, with exec); the restore
    succeeds only if it exits 0, and otherwise exits with its code. --deadline covers both.

    \b
    Examples:
      streamer restore s3://backups/app.sql.gz -i key.txt -- mysql -h db app
      AGE_IDENTITY="$(cat key.txt)" streamer restore s3://backups/app.sql.gz -- psql -h db app
      streamer restore s3://backups/app.sql.gz -i key.txt --check sh --check -c \\
          --check 'test "$(mysql -N -h db app -e "SELECT COUNT(*) FROM t")" -gt 0' \\
          -- mysql -h db app
    """
    settings = s3_settings(kw)
    as_json, outputs = kw.pop("as_json"), kw.pop("outputs")

    expected = kw.pop("expected_sha256")

    def action(stop: Stop) -> Summary:
        options = restore_options(kw, expected)
        run = runner(kw)
        check = restore_check(kw, run)
        storage, key = _open_storage(source, settings)
        summary = run_restore(storage, key, run, command, options, stop, check)
        _emit(summary, as_json, outputs)
        return summary

    _run(action, Action.RESTORE, outputs)


@main.command(Subcommand.VERIFY)
@click.argument("source")
@identity_option
@compression_auto
@sha256_option
@click.option(
    "--latest",
    is_flag=True,
    help="SOURCE is a prefix (s3://BUCKET/PREFIX): verify the newest object under it.",
)
@storage_options
@report_options
def verify(source: str, **kw: Any) -> None:
    """Download, decrypt and decompress SOURCE, checking every layer; restore nothing.

    \b
    Examples:
      streamer verify s3://backups/app.sql.gz -i key.txt --json
      streamer verify s3://backups/app.sql.gz -i key.txt --sha256 9f86d08…
      streamer verify --latest s3://backups/mysql/ -i key.txt
    """
    settings = s3_settings(kw)
    as_json, outputs = kw.pop("as_json"), kw.pop("outputs")
    expected, latest = kw.pop("expected_sha256"), kw.pop("latest")

    def action(stop: Stop) -> Summary:
        options = restore_options(kw, expected)
        storage, key = _open_storage(source, settings)
        if latest:
            key = storage.latest(key)
            _LOG.info("the newest object under %s is %s", source, storage.url(key))
        summary = run_verify(storage, key, options, stop)
        _LOG.info(
            "verified %s: %d stored bytes, %d bytes of data, sha256 %s",
            summary.url,
            summary.stored_bytes,
            summary.plaintext_bytes,
            summary.sha256,
        )
        _emit(summary, as_json, outputs)
        return summary

    _run(action, Action.VERIFY, outputs)
