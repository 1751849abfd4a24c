"""``backup-gen``: validate the API objects, render them into Argo objects, print the CRDs,
run the controller.

Thin commands: each parses its options, calls one function of :mod:`generator.generate` (or
:func:`generator.controller.operator.run`), and turns a
:class:`~generator.errors.GeneratorError` into exit status 1 with its message (2 when the
controller has no Kubernetes configuration), never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import click

from generator.controller.settings import Settings
from generator.errors import GeneratorError
from generator.generate import crd_texts, render_texts, validate_texts
from generator.render import DEFAULT_IMAGE, DEFAULT_SERVICE_ACCOUNT, RenderOptions

__all__ = ["main"]

_files = click.option(
    "-f",
    "--filename",
    "files",
    type=click.File("r", encoding="utf-8"),
    multiple=True,
    required=True,
    help="A YAML file of API objects (multi-document; - for stdin). Repeatable.",
)


def _texts(files: tuple[IO[str], ...]) -> list[tuple[str, str]]:
    texts = []
    for f in files:
        name = f.name if f.name != "<stdin>" else "-"
        try:
            texts.append((name, f.read()))
        except UnicodeDecodeError:
            raise click.BadParameter(
                f"{name}: not UTF-8 text; give a YAML file", param_hint="'-f' / '--filename'"
            ) from None
    return texts


class _Failed(click.ClickException):
    """A user mistake: message on stderr, exit status 1."""

    def show(self, file: IO[str] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="backup-operator", prog_name="backup-gen")
def main() -> None:
    """Turn BackupStorage, BackupSchedule and BackupRun objects into Argo Workflows objects.

    \b
    Examples:
      backup-gen validate -f backups.yaml
      backup-gen render -f backups.yaml --namespace db | kubectl apply -f -
      backup-gen crds | kubectl apply -f -
      backup-gen controller --all-namespaces
    """


@main.command()
@_files
def validate(files: tuple[IO[str], ...]) -> None:
    """Check the objects and report every problem with its field path.

    Exit status 1 if there is any problem. BackupStorages referred to by schedules and runs must
    be in the input.

    \b
    Examples:
      backup-gen validate -f storage.yaml -f mysql-daily.yaml
      cat *.yaml | backup-gen validate -f -
    """
    try:
        objects = validate_texts(_texts(files))
    except GeneratorError as exc:
        raise _Failed(str(exc)) from None
    names = ", ".join(f"{o.kind}/{o.metadata.name}" for o in objects)
    click.echo(f"ok: {len(objects)} object(s): {names}")


@main.command()
@_files
@click.option("-n", "--namespace", help="Namespace of objects that do not name one.")
@click.option("--image", default=DEFAULT_IMAGE, show_default=True, help="The streamer image.")
@click.option(
    "--service-account",
    default=DEFAULT_SERVICE_ACCOUNT,
    show_default=True,
    help="ServiceAccount of the workflows (needs get pods and create pods/exec).",
)
@click.option(
    "--restore",
    is_flag=True,
    help="Also render the restore Workflow of each BackupRun (restores its status.path).",
)
def render(
    files: tuple[IO[str], ...],
    namespace: str | None,
    image: str,
    service_account: str,
    restore: bool,
) -> None:
    """Print the Argo objects of the input as YAML.

    A BackupSchedule becomes a CronWorkflow and a WorkflowTemplate <name>-restore; a BackupRun
    becomes a Workflow (and <name>-restore when asked). BackupStorages are read from the input.

    \b
    Examples:
      backup-gen render -f storage.yaml -f mysql-daily.yaml | kubectl apply -n db -f -
      backup-gen render -f storage.yaml -f run.yaml --image registry.local/backup-operator:dev
      argo submit --from workflowtemplate/mysql-daily-restore -p path=backups/mysql-….sql
    """
    options = RenderOptions(
        image=image, service_account=service_account, namespace=namespace, restore=restore
    )
    try:
        click.echo(render_texts(_texts(files), options), nl=False)
    except GeneratorError as exc:
        raise _Failed(str(exc)) from None


@main.command()
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per CRD into this directory instead of printing them.",
)
def crds(output_dir: Path | None) -> None:
    """Print the CustomResourceDefinitions of the three kinds.

    \b
    Examples:
      backup-gen crds | kubectl apply --server-side -f -
      backup-gen crds -o crds/
    """
    texts = crd_texts()
    if output_dir is None:
        click.echo("".join(texts.values()), nl=False)
        return
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (output_dir / name).write_text(text, encoding="utf-8")
            click.echo(f"wrote {output_dir / name}")
    except OSError as exc:
        raise _Failed(f"cannot write the CRDs into {output_dir}: {exc.strerror}") from None


class _Unconfigured(_Failed):
    """No Kubernetes configuration: exit status 2."""

    exit_code = 2


@main.command()
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="A namespace whose schedules, runs and Workflows to handle. Repeatable.",
)
@click.option(
    "-A", "--all-namespaces", is_flag=True, help="Handle every namespace (needs cluster RBAC)."
)
@click.option("--image", default=DEFAULT_IMAGE, show_default=True, help="The streamer image.")
@click.option(
    "--service-account",
    default=DEFAULT_SERVICE_ACCOUNT,
    show_default=True,
    help="ServiceAccount of the workflows (needs get pods and create pods/exec).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics on this port (/metrics). Off by default.",
)
@click.option(
    "--liveness-port",
    type=click.IntRange(1, 65535),
    help="Answer liveness probes on this port (/healthz). Off by default.",
)
@click.option(
    "--storage-check-interval",
    type=click.FloatRange(min=1),
    default=Settings.storage_check_interval,
    show_default=True,
    help="Seconds between checks of each BackupStorage's bucket.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every request (never a body).")
def controller(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    image: str,
    service_account: str,
    metrics_port: int | None,
    liveness_port: int | None,
    storage_check_interval: float,
    verbose: bool,
) -> None:
    """Run the controller: keep Argo objects in step with the backup objects, and report back.

    It uses the in-cluster service account, else the kubeconfig (KUBECONFIG or
    ~/.kube/config). Run one replica (a Deployment with strategy Recreate); it stops on
    SIGTERM or Ctrl-C.

    \b
    Examples:
      backup-gen controller --all-namespaces --metrics-port 9090 --liveness-port 8080
      backup-gen controller -n db -n web --image registry.local/backup-operator:1.0
      KUBECONFIG=~/.kube/dev backup-gen controller -n default -v
    """
    if bool(namespaces) == all_namespaces:
        raise click.UsageError("give --namespace NS (repeatable) or --all-namespaces, not both")
    from generator.controller.operator import ControllerOptions, KubeConfigError, run

    settings = Settings(
        image=image,
        service_account=service_account,
        storage_check_interval=storage_check_interval,
    )
    options = ControllerOptions(
        namespaces=namespaces,
        all_namespaces=all_namespaces,
        settings=settings,
        metrics_port=metrics_port,
        liveness_port=liveness_port,
        verbose=verbose,
    )
    try:
        run(options)
    except KubeConfigError as exc:
        raise _Unconfigured(str(exc)) from None
