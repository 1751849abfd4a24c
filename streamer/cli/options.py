"""The ``streamer`` command's shared options, and the objects they turn into.

User mistakes become :class:`click.UsageError` or :class:`click.BadParameter` here, before
anything runs; everything else is the pipeline's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from streamer.contract import (
    ENCODED_TEMPLATE_PREFIX,
    FAILURE_OUTPUTS,
    LOCK_MODES,
    MAX_LOCK_DAYS,
    Env,
    Flag,
)
from streamer.errors import ConfigError
from streamer.pipeline import Check, Compression, RestoreOptions
from streamer.sources.base import Runner
from streamer.sources.local import LocalRunner
from streamer.stages import age
from streamer.storage import S3Settings, Storage
from streamer.storage.settings import ObjectLock

__all__ = [
    "check_options",
    "compression_auto",
    "exec_options",
    "identity_option",
    "lock_options",
    "object_lock",
    "parse_vars",
    "report_options",
    "resolve_key",
    "restore_check",
    "restore_options",
    "runner",
    "s3_settings",
    "storage_options",
]

F = TypeVar("F", bound=Callable[..., Any])
MiB = 1 << 20


def storage_options(f: F) -> F:
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


def exec_options(f: F) -> F:
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
            help="Kill the command and fail if it runs longer (one deadline for a restore "
            f"and its {Flag.CHECK}).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def check_options(f: F) -> F:
    options = [
        click.option(
            Flag.CHECK,
            "check",
            multiple=True,
            metavar="ARG",
            help="Once the restore succeeded, run this command, one ARG per option in order "
            f"({Flag.CHECK} sh {Flag.CHECK} -c {Flag.CHECK} 'test …'); the restore succeeds "
            "only if it exits 0. Its output goes to the log.",
        ),
        click.option(
            Flag.CHECK_CONTAINER,
            metavar="NAME",
            help=f"Run the check in this container of the Pod (default: {Flag.CONTAINER}).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def restore_check(kw: dict[str, Any], runner: Runner) -> Check | None:
    """The restore's check: in the restore's own place, or in ``--check-container``."""
    argv, container = tuple(kw.pop("check")), kw.pop("check_container")
    if not argv:
        if container is not None:
            raise ConfigError(
                f"{Flag.CHECK_CONTAINER} {container!r} says where the check runs, but no "
                f"{Flag.CHECK} gives the check command: add it, one {Flag.CHECK} per argument, "
                f"or leave {Flag.CHECK_CONTAINER} out"
            )
        return None
    if container is None:
        return Check(argv, runner)
    if not isinstance(runner, LocalRunner):
        from streamer.sources.exec import ExecRunner

        if isinstance(runner, ExecRunner):
            return Check(argv, runner.for_container(container))
    raise ConfigError(
        f"{Flag.CHECK_CONTAINER} {container!r} names a container of the Pod, but the restore "
        f"runs here: pass {Flag.CONTAINER} (and {Flag.POD}) to restore in the Pod, or leave "
        f"{Flag.CHECK_CONTAINER} out"
    )


def lock_options(f: F) -> F:
    options = [
        click.option(
            Flag.OBJECT_LOCK_MODE,
            type=click.Choice(LOCK_MODES),
            help="Store the object under S3 Object Lock in this mode (needs "
            f"{Flag.OBJECT_LOCK_DAYS}, and a bucket with Object Lock enabled).",
        ),
        click.option(
            Flag.OBJECT_LOCK_DAYS,
            type=click.IntRange(1, MAX_LOCK_DAYS),
            metavar="DAYS",
            help="…until this many days after the upload starts.",
        ),
        click.option(
            Flag.LEGAL_HOLD,
            is_flag=True,
            help="Put the object under an S3 legal hold (with or without a retention).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def object_lock(kw: dict[str, Any]) -> ObjectLock | None:
    mode, days = kw.pop("object_lock_mode"), kw.pop("object_lock_days")
    legal_hold = kw.pop("legal_hold")
    if (mode is None) != (days is None):
        raise click.UsageError(
            f"{Flag.OBJECT_LOCK_MODE} and {Flag.OBJECT_LOCK_DAYS} come together: "
            "a retention needs a mode and how many days it lasts"
        )
    if mode is None and not legal_hold:
        return None
    return ObjectLock(mode=mode, days=days, legal_hold=legal_hold)


def report_options(f: F) -> F:
    f = click.option(
        "--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout."
    )(f)
    return click.option(
        Flag.OUTPUTS,
        type=click.Path(file_okay=False, path_type=Path),
        metavar="DIR",
        help="Write one file per summary value into DIR (Argo output parameters); on "
        f"failure, {' and '.join(FAILURE_OUTPUTS)} instead.",
    )(f)


def sha256_option(f: F) -> F:
    return click.option(
        Flag.SHA256,
        "expected_sha256",
        metavar="HEX",
        help="Fail unless the stored object has this SHA-256 (the sha256 a backup reported; "
        "empty: not compared). A restore finds out at the end, once COMMAND has read it all.",
    )(f)


def identity_option(f: F) -> F:
    return click.option(
        "-i",
        Flag.IDENTITY,
        "identities",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help="age identity file (repeatable); or set AGE_IDENTITY to the key itself.",
    )(f)


def s3_settings(kw: dict[str, Any], lock: ObjectLock | None = None) -> S3Settings:
    part_size = kw.pop("part_size")
    return S3Settings(
        endpoint_url=kw.pop("endpoint_url"),
        region=kw.pop("region"),
        path_style=kw.pop("path_style"),
        verify_tls=not kw.pop("insecure"),
        part_size=part_size * MiB if part_size else None,
        parts_in_flight=kw.pop("parts_in_flight"),
        ranges_in_flight=kw.pop("ranges_in_flight"),
        object_lock=lock,
        part_checksums=_part_checksums(),
    )


def _part_checksums() -> bool:
    """Whether parts carry their CRC32: the AWS SDKs' AWS_REQUEST_CHECKSUM_CALCULATION, whose
    default ``when_supported`` sends them and ``when_required`` does not."""
    value = os.environ.get(Env.AWS_REQUEST_CHECKSUM_CALCULATION, "when_supported")
    choice = value.strip().lower()
    if choice not in ("when_supported", "when_required"):
        raise click.BadParameter(
            f"{value!r} is neither when_supported (send each part's CRC32, the default) nor "
            "when_required (send none, for S3-compatible servers that refuse checksums)",
            param_hint=Env.AWS_REQUEST_CHECKSUM_CALCULATION,
        )
    return choice == "when_supported"


def runner(kw: dict[str, Any]) -> Runner:
    pod, container, namespace = kw.pop("pod"), kw.pop("container"), kw.pop("namespace")
    ready_timeout = kw.pop("ready_timeout")
    if container is None:
        if pod is not None:
            raise click.UsageError("--pod needs --container: which container runs the command?")
        return LocalRunner()
    from streamer.sources.exec import ExecRunner

    return ExecRunner.from_environment(pod, container, namespace, ready_timeout=ready_timeout)


def parse_vars(pairs: Sequence[str], namespace: str | None) -> dict[str, str]:
    # Imported here, not at the top: Jinja2 is a tenth of a restore's start-up, and only a
    # backup renders a key.
    from streamer.pathtemplate import VARIABLES

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


def resolve_key(storage: Storage, key: str, template: str | None, variables: dict[str, str]) -> str:
    if template is None:
        if not key or key.endswith("/"):
            raise ConfigError(f"{storage.url(key)} names no object: add a key, or --path-template")
        return key
    from streamer.pathtemplate import render_path

    rendered = render_path(_decode_template(template), variables)
    return f"{key.rstrip('/')}/{rendered}" if key else rendered


def restore_options(kw: dict[str, Any], expected_sha256: str | None = None) -> RestoreOptions:
    compression: Compression = kw.pop("compression")
    return RestoreOptions(
        identities=age.load_identities(kw.pop("identities"), os.environ.get(Env.AGE_IDENTITY)),
        compression=compression,
        deadline=kw.pop("deadline", None),
        expected_sha256=expected_sha256,
    )


compression_auto = click.option(
    Flag.COMPRESSION,
    type=click.Choice(["auto", "gzip", "none"]),
    default="auto",
    show_default=True,
    help="auto: gunzip when the data is gzip; none: pass it on as stored.",
)
