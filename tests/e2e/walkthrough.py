"""The README's walkthrough, command by command: the one place both the README and the kind
suite are checked against.

Every shell command of the README's section :data:`HEADING` is a constant here, and
:data:`SECTIONS` lists them by subsection, in the README's order. ``tests/test_readme.py``
parses the README (:func:`readme_sections`) and requires exactly :data:`SECTIONS`; the kind
suite runs these constants, as written, through :class:`tests.e2e.shell.Shell`. So a command
changed in one place and not in the other fails ``make test``, without a cluster.

A README command is one logical line of a ``sh`` block: a line ending in a backslash goes on
with the next (joined by one space), a heredoc (``<<'EOF'`` … ``EOF``) is one command with its
lines, and ``  # …`` (two spaces first) ends a line with a comment that is not part of it.

Nothing here needs a cluster or a third-party package: ``tests/test_readme.py`` imports it.
"""

from __future__ import annotations

import re
from typing import Final

# --- pinned versions and names the commands carry ------------------------------------------

#: Argo Workflows release whose official install manifest is applied (server-side: since v4 it
#: carries the full CRDs, too large for a client-side apply).
ARGO_VERSION: Final = "v4.0.5"
ARGO_MANIFEST: Final = (
    f"https://github.com/argoproj/argo-workflows/releases/download/{ARGO_VERSION}/install.yaml"
)
#: The image built from the Dockerfile and loaded into kind; not ``latest``, so that Pods never
#: try to pull it.
IMAGE: Final = "backup-operator:dev"
#: The BackupSchedule of the design document, and the namespace it is applied in: SEED.md's
#: MySQL is ``mysql.development``.
NAMESPACE: Final = "development"
SCHEDULE: Final = "mysql-daily"
STORAGE: Final = "minio"
#: The bucket of the design document's BackupStorage.
BUCKET: Final = "backups"
MINIO_NAMESPACE: Final = "minio"
#: The throwaway credentials the walkthrough creates (and the suite reads MinIO and MySQL with).
MINIO_ACCESS_KEY: Final = "backup-operator"
MINIO_SECRET_KEY: Final = "change-me-minio"
MYSQL_USER: Final = "root"
MYSQL_PASSWORD: Final = "change-me-mysql"
#: The stand-in MinIO and MySQL the walkthrough applies on a cluster that has none.
MANIFESTS: Final = "tests/e2e/manifests"

#: What the commands read from the checkout (the image's build context included): the kind
#: suite runs them from a copy of these.
READS: Final = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "streamer",
                "generator", "crds", "argo", MANIFESTS)  # fmt: skip

#: The heading of the README's walkthrough; it runs until the next ``## `` heading.
HEADING: Final = "## On a cluster: install, back up, restore"

# --- Install ------------------------------------------------------------------------------

CREATE_ARGO_NAMESPACE: Final = "kubectl create namespace argo"
INSTALL_ARGO: Final = f"kubectl apply --server-side -n argo -f {ARGO_MANIFEST}"
WAIT_ARGO: Final = "kubectl rollout status -n argo deployment/workflow-controller --timeout=5m"
INSTALL: Final = "kubectl apply -k argo/"
WAIT_CONTROLLER: Final = (
    "kubectl rollout status -n backup-operator deployment/backup-operator --timeout=5m"
)
#: Named in the Install prose, not a block: what ``kubectl apply -k argo/`` applies.
RENDER_INSTALL: Final = "kubectl kustomize argo/"

# --- An image of your own -----------------------------------------------------------------

BUILD_IMAGE: Final = f"docker build -t {IMAGE} ."
LOAD_IMAGE: Final = f"kind load docker-image {IMAGE}"
OVERLAY_DIR: Final = "dev-install"
MAKE_OVERLAY_DIR: Final = f"mkdir -p {OVERLAY_DIR}"
#: The overlay: argo/ with ``images:``, and argo/'s replacement repeated, because a base's
#: replacements run before an overlay's images (argo/kustomization.yaml says so).
OVERLAY: Final = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../argo]
images:
  - {name: ghcr.io/backup-operator/backup-operator, newName: backup-operator, newTag: dev}
replacements:
  - source:
      kind: Deployment
      name: backup-operator
      fieldPath: spec.template.spec.containers.[name=controller].image
    targets:
      - select: {kind: Deployment, name: backup-operator}
        fieldPaths:
          - spec.template.spec.containers.[name=controller].args.4
        options: {delimiter: "=", index: 1}
"""
WRITE_OVERLAY: Final = f"cat > {OVERLAY_DIR}/kustomization.yaml <<'EOF'\n{OVERLAY}EOF"
INSTALL_OVERLAY: Final = f"kubectl apply -k {OVERLAY_DIR}/"

# --- The database, the bucket and the namespace -------------------------------------------

CREATE_MINIO_NAMESPACE: Final = f"kubectl create namespace {MINIO_NAMESPACE}"
MINIO_SECRET: Final = (
    f"kubectl create secret generic minio-credentials -n {MINIO_NAMESPACE} "
    f"--from-literal=AWS_ACCESS_KEY_ID={MINIO_ACCESS_KEY} "
    f"--from-literal=AWS_SECRET_ACCESS_KEY={MINIO_SECRET_KEY}"
)
CREATE_NAMESPACE: Final = f"kubectl create namespace {NAMESPACE}"
MYSQL_SECRET: Final = (
    f"kubectl create secret generic mysql-credentials -n {NAMESPACE} "
    f"--from-literal=username={MYSQL_USER} --from-literal=password={MYSQL_PASSWORD}"
)
APPLY_STAND_INS: Final = f"kubectl apply -f {MANIFESTS}/minio.yaml -f {MANIFESTS}/mysql.yaml"
WAIT_MINIO: Final = "kubectl rollout status -n minio deployment/minio --timeout=5m"
MAKE_BUCKET: Final = f"kubectl apply -f {MANIFESTS}/bucket.yaml"
WAIT_BUCKET: Final = "kubectl wait -n minio --for=condition=Complete job/make-bucket --timeout=5m"
WAIT_MYSQL: Final = f"kubectl rollout status -n {NAMESPACE} deployment/mysql --timeout=5m"
WORKFLOW_RBAC: Final = f"kubectl apply -n {NAMESPACE} -f argo/namespace/workflow-rbac.yaml"

# --- The first backup ---------------------------------------------------------------------

#: Named in the prose: the Argo objects the controller will make, without a cluster.
RENDER_EXAMPLES: Final = f"backup-gen render -f argo/examples/mysql.yaml -n {NAMESPACE}"
APPLY_EXAMPLES: Final = f"kubectl apply -n {NAMESPACE} -f argo/examples/mysql.yaml"
WAIT_STORAGE: Final = f"kubectl wait --for=condition=Ready backupstorage/{STORAGE} --timeout=5m"
WAIT_SCHEDULE: Final = (
    f"kubectl wait -n {NAMESPACE} --for=condition=Ready backupschedule/{SCHEDULE} --timeout=5m"
)
TRIGGER: Final = (
    f"kubectl annotate -n {NAMESPACE} backupschedule/{SCHEDULE} --overwrite "
    'backup-operator.io/trigger="$(date +%s)"'
)

# --- Watching it --------------------------------------------------------------------------

WATCH_RUNS: Final = f"kubectl get backupruns -n {NAMESPACE} -w"
#: The newest run of the schedule, into $RUN for the commands after it.
FIND_RUN: Final = (
    f"RUN=$(kubectl get backupruns -n {NAMESPACE} -l backup-operator.io/schedule={SCHEDULE} "
    "--sort-by=.metadata.creationTimestamp -o jsonpath='{.items[-1:].metadata.name}')"
)
WAIT_RUN: Final = (
    f"kubectl wait -n {NAMESPACE} --for=condition=Successful backuprun/$RUN --timeout=10m"
)
DESCRIBE_RUN: Final = f"kubectl describe -n {NAMESPACE} backuprun/$RUN"
ARGO_GET: Final = f"argo get -n {NAMESPACE} $RUN"
UI_FORWARD: Final = "kubectl -n argo port-forward service/argo-server 2746:2746"
UI_TOKEN: Final = "kubectl create token -n argo argo-server"

# --- Restoring it -------------------------------------------------------------------------

RESTORE: Final = f"kubectl annotate -n {NAMESPACE} backuprun/$RUN backup-operator.io/restore=true"
WAIT_RESTORE: Final = (
    f"kubectl wait -n {NAMESPACE} --for=condition=Restored backuprun/$RUN --timeout=10m"
)
RESTORED_AT: Final = (
    f"kubectl get -n {NAMESPACE} backuprun/$RUN "
    "-o jsonpath='{.metadata.annotations.backup-operator\\.io/restored-at}'"
)
SUBMIT_RESTORE: Final = (
    f"argo submit -n {NAMESPACE} --from workflowtemplate/{SCHEDULE}-restore --wait "
    f"-p path=\"$(kubectl get -n {NAMESPACE} backuprun/$RUN -o jsonpath='{{.status.path}}')\""
)

# --- Rotation -----------------------------------------------------------------------------

KEEP: Final = f"kubectl annotate -n {NAMESPACE} backuprun/$RUN backup-operator.io/keep=true"
#: The history limit the walkthrough lowers the schedule's 14 to.
LOWERED_LIMIT: Final = 2
LOWER_LIMIT: Final = (
    f"kubectl patch -n {NAMESPACE} backupschedule/{SCHEDULE} --type=merge "
    f'-p \'{{"spec":{{"successfulRunsHistoryLimit":{LOWERED_LIMIT}}}}}\''
)
LIST_RUNS: Final = (
    f"kubectl get backupruns -n {NAMESPACE} -l backup-operator.io/schedule={SCHEDULE}"
)

# --- Deleting a run -----------------------------------------------------------------------

DELETE_RUN: Final = f"kubectl delete -n {NAMESPACE} backuprun/$RUN"

# --- Monitoring ---------------------------------------------------------------------------

APPLY_MONITORING: Final = "kubectl apply -f argo/monitoring/"
METRICS_FORWARD: Final = (
    "kubectl port-forward -n backup-operator deployment/backup-operator 9090:9090"
)
SCRAPE: Final = "curl -s http://localhost:9090/metrics | grep '^backup_operator_'"

#: The README's walkthrough: its subsections and their commands, in order.
SECTIONS: Final[dict[str, tuple[str, ...]]] = {
    "Install": (CREATE_ARGO_NAMESPACE, INSTALL_ARGO, WAIT_ARGO, INSTALL, WAIT_CONTROLLER),
    "An image of your own": (
        BUILD_IMAGE,
        LOAD_IMAGE,
        MAKE_OVERLAY_DIR,
        WRITE_OVERLAY,
        INSTALL_OVERLAY,
    ),
    "The bucket, the database and the namespace": (
        CREATE_MINIO_NAMESPACE,
        MINIO_SECRET,
        CREATE_NAMESPACE,
        MYSQL_SECRET,
        APPLY_STAND_INS,
        WAIT_MINIO,
        MAKE_BUCKET,
        WAIT_BUCKET,
        WAIT_MYSQL,
        WORKFLOW_RBAC,
    ),
    "The first backup": (APPLY_EXAMPLES, WAIT_STORAGE, WAIT_SCHEDULE, TRIGGER),
    "Watching it": (
        WATCH_RUNS,
        FIND_RUN,
        WAIT_RUN,
        DESCRIBE_RUN,
        ARGO_GET,
        UI_FORWARD,
        UI_TOKEN,
    ),
    "Restoring it": (RESTORE, WAIT_RESTORE, RESTORED_AT, SUBMIT_RESTORE),
    "Rotation": (KEEP, LOWER_LIMIT, TRIGGER, LIST_RUNS),
    "Deleting a run": (DELETE_RUN,),
    "Monitoring": (APPLY_MONITORING, METRICS_FORWARD, SCRAPE),
}

#: Commands the walkthrough names in its prose (inline code), not in a block.
PROSE: Final = (RENDER_INSTALL, RENDER_EXAMPLES)

#: The README commands the kind suite does not run as written, and what it does instead.
NOT_RUN_ON_KIND: Final[dict[str, str]] = {
    INSTALL: (
        "it installs the release image: the suite installs the same base through the overlay "
        "with the image it built (tests/test_readme.py renders both)"
    ),
    WATCH_RUNS: "it never exits: the suite lists the same runs until the trigger's is there",
    UI_FORWARD: (
        "it runs until stopped: the suite opens the same port-forward on a free local port and "
        "reads the run's Workflow from the Argo Server's API, as the UI does"
    ),
    METRICS_FORWARD: (
        "it runs until stopped: the suite opens the same port-forward on a free local port"
    ),
    SCRAPE: "it reads port 9090 of this machine: the suite reads /metrics on its own port",
    RENDER_INSTALL: "it needs no cluster: tests/test_readme.py runs it",
    RENDER_EXAMPLES: "it needs no cluster: tests/test_readme.py runs it",
}

# --- reading the README -------------------------------------------------------------------

_HEREDOC = re.compile(r"<<-?'?(?P<end>\w+)'?\s*$")
_COMMENT = re.compile(r"\s{2,}#.*$")


def walkthrough_text(readme: str) -> str:
    """The walkthrough section of the README, heading included."""
    start = readme.find(f"\n{HEADING}\n")
    if start < 0:
        raise ValueError(f"the README has no section {HEADING!r}")
    end = readme.find("\n## ", start + 1)
    return readme[start + 1 : end if end >= 0 else len(readme)]


def block_commands(block: str) -> list[str]:
    """The commands of one ``sh`` block (see the module docstring for the rules)."""
    commands: list[str] = []
    lines = iter(block.splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        heredoc = _HEREDOC.search(line)
        if heredoc is not None:
            body = [line]
            for more in lines:
                body.append(more)
                if more == heredoc["end"]:
                    break
            else:
                raise ValueError(f"the heredoc of {line!r} has no {heredoc['end']} line")
            commands.append("\n".join(body))
            continue
        command = _COMMENT.sub("", line).strip()
        while command.endswith("\\"):
            command = command[:-1].rstrip() + " " + _COMMENT.sub("", next(lines, "")).strip()
        commands.append(command)
    return commands


def readme_blocks(section: str, language: str) -> list[tuple[str, str]]:
    """Every fenced block of ``language`` in ``section``, with the ``### `` heading it is under."""
    blocks = []
    heading = ""
    for match in re.finditer(rf"^### ([^\n]+)$|^```{language}\n(.*?)^```$", section, re.M | re.S):
        if match[1] is not None:
            heading = match[1].strip()
        else:
            blocks.append((heading, match[2]))
    return blocks


def readme_sections(readme: str) -> dict[str, tuple[str, ...]]:
    """The commands of the README's walkthrough by subsection, in order (comparable with
    :data:`SECTIONS`)."""
    sections: dict[str, list[str]] = {}
    for heading, block in readme_blocks(walkthrough_text(readme), "sh"):
        sections.setdefault(heading, []).extend(block_commands(block))
    return {heading: tuple(commands) for heading, commands in sections.items()}


def readme_commands() -> tuple[str, ...]:
    """Every command of :data:`SECTIONS` once, in order, and those of the prose."""
    seen = dict.fromkeys(c for commands in SECTIONS.values() for c in commands)
    return (*seen, *PROSE)
