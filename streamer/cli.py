"""The ``streamer`` command: parse, call one pipeline function, report.

User mistakes become usage errors (exit 2) before anything runs; failures print one line
``streamer: error: …`` (never a traceback, never a secret) and exit non-zero: a restore exits
with its command's code, a deadline with 124, a termination signal with 128 + N.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

import click

from streamer import __version__
from streamer.contract import (
    DEFAULT_LEVEL,
    ENCODED_TEMPLATE_PREFIX,
    MAX_LEVEL,
    MIN_LEVEL,
    Env,
    Flag,
    Subcommand,
)
from streamer.errors import ConfigError, StreamerError
from streamer.pathtemplate import VARIABLES, render_path
from streamer.pipeline import BackupOptions, Compression, RestoreOptions, Summary
from streamer.pipeline import backup as run_backup
from streamer.pipeline import restore as run_restore
from streamer.pipeline import verify as run_verify
from streamer.sources.base import Runner
from streamer.sources.local import LocalRunner
from streamer.stages import age
from streamer.storage.base import S3Settings, Storage, open_storage

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])
_LOG = logging.getLogger("streamer")
MiB = 1 << 20


class _Terminated(BaseException):
    """SIGTERM/SIGINT: unwinds like an error so uploads are aborted and commands stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum: int, frame: FrameType | None) -> NoReturn:
    raise _Terminated(signum)


def _storage_options(f: F) -> F:
    options = [
        click.option(
            Flag.ENDPOINT_URL,
            metavar="URL",
            help="S3 endpoint (default: AWS_ENDPOINT_URL_S3 or AWS).",
        ),
        click.option(Flag.REGION, metavar="REGION", help="S3 region (default: AWS_REGION)."),
        click.option(Flag.PATH_STYLE, is_flag=True, help="Path-style addressing (MinIO, Ceph)."),
        click.option(
            Flag.INSECURE, is_flag=True, help="Do not verify the endpoint's TLS certificate."
        ),
        click.option(
            "--part-size",
            type=click.IntRange(5, 5 * 1024),
            metavar="MiB",
            help="First multipart part size in MiB (default: chosen; parts grow for huge streams).",
        ),
        click.option(
            "--parts-in-flight",
            type=click.IntRange(1, 64),
            default=S3Settings.parts_in_flight,
            show_default=True,
            help="Parts uploaded at once; memory is about part size x (this + 1).",
        ),
        click.option(
            "--ranges-in-flight",
            type=click.IntRange(1, 64),
            default=S3Settings.ranges_in_flight,
            show_default=True,
            help="Ranged GETs at once when reading; 1 streams one GET (resumed if it breaks).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _exec_options(f: F) -> F:
    options = [
        click.option(
            Flag.POD, metavar="NAME", help="Run the command in this Pod (default: $POD_NAME)."
        ),
        click.option(
            Flag.CONTAINER,
            "-c",
            metavar="NAME",
            help="…in this container of the Pod (enables exec).",
        ),
        click.option(
            Flag.NAMESPACE,
            "-n",
            metavar="NS",
            help="The Pod's namespace (default: in-cluster namespace).",
        ),
        click.option(
            "--ready-timeout",
            type=click.FloatRange(0),
            default=120.0,
            show_default=True,
            metavar="SECONDS",
            help="How long to wait for the container to be running.",
        ),
        click.option(
            Flag.DEADLINE,
            type=click.FloatRange(0, min_open=True),
            metavar="SECONDS",
            help="Kill the command and fail if it runs longer.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _report_options(f: F) -> F:
    f = click.option(
        "--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout."
    )(f)
    return click.option(
        Flag.OUTPUTS,
        type=click.Path(file_okay=False, path_type=Path),
        metavar="DIR",
        help="Write one file per summary value into DIR (Argo output parameters).",
    )(f)


def _identity_option(f: F) -> F:
    return click.option(
        "-i",
        Flag.IDENTITY,
        "identities",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help="age identity file (repeatable); or set AGE_IDENTITY to the key itself.",
    )(f)


def _s3_settings(kw: dict[str, Any]) -> S3Settings:
    part_size = kw.pop("part_size")
    return S3Settings(
        endpoint_url=kw.pop("endpoint_url"),
        region=kw.pop("region"),
        path_style=kw.pop("path_style"),
        verify_tls=not kw.pop("insecure"),
        part_size=part_size * MiB if part_size else None,
        parts_in_flight=kw.pop("parts_in_flight"),
        ranges_in_flight=kw.pop("ranges_in_flight"),
    )


def _runner(kw: dict[str, Any]) -> Runner:
    pod, container, namespace = kw.pop("pod"), kw.pop("container"), kw.pop("namespace")
    ready_timeout = kw.pop("ready_timeout")
    if container is None:
        if pod is not None:
            raise click.UsageError("--pod needs --container: which container runs the command?")
        return LocalRunner()
    from streamer.sources.exec import ExecRunner

    return ExecRunner.from_environment(pod, container, namespace, ready_timeout=ready_timeout)


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


def _run(action: Callable[[], None]) -> NoReturn:
    """Run ``action``; turn every expected failure into one line and an exit code."""
    previous = {
        signum: signal.signal(signum, _on_signal) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        action()
    except StreamerError as exc:
        click.echo(f"streamer: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except _Terminated as exc:
        click.echo(f"streamer: stopped by {exc}; nothing was stored", err=True)
        sys.exit(128 + exc.signum)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    sys.exit(0)


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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


def _parse_vars(pairs: Sequence[str], namespace: str | None) -> dict[str, str]:
    variables = {}
    if namespace or os.environ.get(Env.POD_NAMESPACE):
        variables["namespace"] = namespace or os.environ[Env.POD_NAMESPACE]
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in VARIABLES or name == "now":
            raise click.BadParameter(
                f"{pair!r}: expected NAME=VALUE with NAME one of "
                f"{', '.join(v for v in VARIABLES if v != 'now')}",
                param_hint=Flag.VAR,
            )
        variables[name] = value
    return variables


def _decode_template(template: str) -> str:
    if not template.startswith(ENCODED_TEMPLATE_PREFIX):
        return template
    import base64
    import binascii

    try:
        encoded = template.removeprefix(ENCODED_TEMPLATE_PREFIX)
        return base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise click.BadParameter(
            f"the {ENCODED_TEMPLATE_PREFIX} value does not decode", param_hint=Flag.PATH_TEMPLATE
        ) from exc


def _resolve_key(
    storage: Storage, key: str, template: str | None, variables: dict[str, str]
) -> str:
    if template is None:
        if not key or key.endswith("/"):
            raise ConfigError(f"{storage.url(key)} names no object: add a key, or --path-template")
        return key
    rendered = render_path(_decode_template(template), variables)
    return f"{key.rstrip('/')}/{rendered}" if key else rendered


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
@_exec_options
@_storage_options
@_report_options
def backup(dest: str, command: tuple[str, ...], **kw: Any) -> None:
    """Run COMMAND and store its stdout at DEST (s3://BUCKET/KEY or file:///PATH).

    The object appears only if the whole stream was stored and COMMAND exited 0; otherwise the
    upload is aborted and nothing is left behind.

    \b
    Examples:
      streamer backup s3://backups/app.sql.gz -r age1… -- mysqldump -h db app
      streamer backup s3://backups/mysql --json \\
          --path-template 'mysql-{{ now | date "2006.01.02-15:04:05" }}.sql' \\
          -- sh -c 'mysqldump -h "$HOST" app'
      streamer backup file:///tmp/etc.tar --compression none -- tar c /etc
    """
    try:
        recipients = [age.parse_recipient(r) for r in kw.pop("recipients")]
        for path in kw.pop("recipients_files"):
            recipients += age.read_recipients_file(path)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint=Flag.RECIPIENT) from exc
    settings = _s3_settings(kw)
    options = BackupOptions(
        compress=kw.pop("compression") == "gzip",
        level=kw.pop("level"),
        recipients=recipients,
        deadline=kw.pop("deadline"),
    )
    variables = _parse_vars(kw.pop("variables"), kw.get("namespace"))
    template = kw.pop("path_template")
    as_json, outputs = kw.pop("as_json"), kw.pop("outputs")

    def action() -> None:
        storage, key = open_storage(dest, settings)
        key = _resolve_key(storage, key, template, variables)
        runner = _runner(kw)
        _emit(run_backup(runner, command, storage, key, options), as_json, outputs)

    _run(action)


def _restore_options(kw: dict[str, Any], expected_sha256: str | None = None) -> RestoreOptions:
    compression: Compression = kw.pop("compression")
    return RestoreOptions(
        identities=age.load_identities(kw.pop("identities"), os.environ.get(Env.AGE_IDENTITY)),
        compression=compression,
        deadline=kw.pop("deadline", None),
        expected_sha256=expected_sha256,
    )


_compression_auto = click.option(
    Flag.COMPRESSION,
    type=click.Choice(["auto", "gzip", "none"]),
    default="auto",
    show_default=True,
    help="auto: gunzip when the data is gzip; none: pass it on as stored.",
)


@main.command(Subcommand.RESTORE)
@click.argument("source")
@click.argument("command", nargs=-1, required=True)
@_identity_option
@_compression_auto
@_exec_options
@_storage_options
@_report_options
def restore(source: str, command: tuple[str, ...], **kw: Any) -> None:
    """Feed the backup at SOURCE to COMMAND's stdin; exit with COMMAND's exit code.

    Encryption and compression are detected from the data. If the stream fails (wrong key,
    corrupted or truncated object) the command is stopped and the restore fails.

    \b
    Examples:
      streamer restore s3://backups/app.sql.gz -i key.txt -- mysql -h db app
      AGE_IDENTITY="$(cat key.txt)" streamer restore s3://backups/app.sql.gz -- psql -h db app
    """
    settings = _s3_settings(kw)
    as_json, outputs = kw.pop("as_json"), kw.pop("outputs")

    def action() -> None:
        options = _restore_options(kw)
        storage, key = open_storage(source, settings)
        runner = _runner(kw)
        _emit(run_restore(storage, key, runner, command, options), as_json, outputs)

    _run(action)


@main.command(Subcommand.VERIFY)
@click.argument("source")
@_identity_option
@_compression_auto
@click.option(
    "--sha256",
    "expected_sha256",
    metavar="HEX",
    help="Fail unless the stored object has this SHA-256.",
)
@_storage_options
@_report_options
def verify(source: str, **kw: Any) -> None:
    """Download, decrypt and decompress SOURCE, checking every layer; restore nothing.

    \b
    Examples:
      streamer verify s3://backups/app.sql.gz -i key.txt --json
      streamer verify s3://backups/app.sql.gz -i key.txt --sha256 9f86d08…
    """
    settings = _s3_settings(kw)
    as_json, outputs = kw.pop("as_json"), kw.pop("outputs")
    expected = kw.pop("expected_sha256")

    def action() -> None:
        options = _restore_options(kw, expected)
        storage, key = open_storage(source, settings)
        summary = run_verify(storage, key, options)
        _LOG.info(
            "verified %s: %d stored bytes, %d bytes of data, sha256 %s",
            summary.url,
            summary.stored_bytes,
            summary.plaintext_bytes,
            summary.sha256,
        )
        _emit(summary, as_json, outputs)

    _run(action)
