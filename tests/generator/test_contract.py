"""The generator and the streamer agree on every name between them (``streamer.contract``).

A rename on one side must fail here, not in a cluster: the streamer writes exactly the outputs
the contract lists, the generator declares only those (with no default that would hide a missing
file), every command line the generator writes parses with the streamer's own click command,
and every environment variable it sets is one the contract names. Validating and rendering
must not load the data plane's native libraries.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from generator.generate import render_texts
from generator.render import DRILL_OUTPUTS, DRILL_TEMPLATE, RenderOptions
from generator.render.pod import OUTPUT_PARAMETERS, OUTPUTS_DIR
from streamer.cli import main as streamer
from streamer.contract import (
    ENCODED_TEMPLATE_PREFIX,
    FAILURE_OUTPUTS,
    LOCK_OUTPUTS,
    OUTPUTS,
    Env,
    Flag,
    Output,
    Subcommand,
)
from streamer.pathtemplate import render_path
from tests.conftest import AgeKey
from tests.generator.conftest import GOLDEN, ROOT

CASES = sorted(p.name.removesuffix(".in.yaml") for p in GOLDEN.glob("*.in.yaml"))
FLAGS = {v for k, v in vars(Flag).items() if k.isupper()}
ENV = {v for k, v in vars(Env).items() if k.isupper()}
#: What must never be imported to validate and render: the data plane's native libraries
#: (and the adapters of the outside systems, which the generator has no business with).
NOT_LOADED = ("isal", "zlib_ng", "pyrage", "boto3", "botocore", "kubernetes", "websocket")


def _rendered(case: str) -> list[dict[str, Any]]:
    source = GOLDEN / f"{case}.in.yaml"
    text = render_texts([(source.name, source.read_text())], RenderOptions())
    return [d for d in yaml.safe_load_all(text) if d]


def _templates() -> list[tuple[str, dict[str, Any]]]:
    """Every Argo template that runs the streamer, in every rendered object of every case."""
    found = []
    for case in CASES:
        for doc in _rendered(case):
            spec = doc["spec"].get("workflowSpec", doc["spec"])
            for template in spec["templates"]:
                found.append((f"{case}:{doc['kind']}/{doc['metadata']['name']}", template))
    return found


TEMPLATES = _templates()


def _options(args: list[str]) -> list[str]:
    """The streamer's own arguments (``verify`` runs no command, so has no ``--``)."""
    if Flag.END_OF_OPTIONS not in args:
        return args
    return args[: args.index(Flag.END_OF_OPTIONS)]


# --- outputs -----------------------------------------------------------------------------------


def test_a_backup_writes_exactly_the_outputs_of_the_contract(
    tmp_path: Path, age_key: AgeKey
) -> None:
    outputs, stored = tmp_path / "outputs", tmp_path / "store" / "db.sql.gz"
    stored.parent.mkdir()
    argv = [Subcommand.BACKUP, stored.as_uri(), Flag.RECIPIENT, age_key.recipient]
    argv += [Flag.OUTPUTS, str(outputs), Flag.END_OF_OPTIONS]
    argv += [sys.executable, "-c", "print('a row of the dump')"]
    result = CliRunner().invoke(streamer, argv)
    assert result.exit_code == 0, result.output
    written = {p.name: p.read_text() for p in outputs.iterdir()}
    assert set(written) == set(OUTPUTS)
    assert all(written.values()), written
    assert written[Output.PATH] == str(stored).lstrip("/")
    assert written[Output.SIZE_IN_BYTES] == str(stored.stat().st_size)
    assert written[Output.SHA256] == hashlib.sha256(stored.read_bytes()).hexdigest()


def test_outputs_are_listed_once() -> None:
    assert len(set(OUTPUTS + LOCK_OUTPUTS)) == len(OUTPUTS) + len(LOCK_OUTPUTS)
    assert set(OUTPUT_PARAMETERS) <= set(OUTPUTS)


def _locked(args: list[str]) -> bool:
    """Whether a command line asks for Object Lock (the streamer then writes LOCK_OUTPUTS)."""
    return bool({Flag.OBJECT_LOCK_MODE, Flag.LEGAL_HOLD} & set(_options(args)))


def test_every_output_parameter_is_a_file_the_streamer_writes_and_has_no_default() -> None:
    declared = 0
    locked = 0
    for name, template in TEMPLATES:
        parameters = (template.get("outputs") or {}).get("parameters", [])
        if not parameters or template["name"] == DRILL_TEMPLATE:
            continue
        container = template["container"]
        assert _options(container["args"])[:1] == [Subcommand.BACKUP], name
        assert container["args"][container["args"].index(Flag.OUTPUTS) + 1] == OUTPUTS_DIR, name
        assert OUTPUTS_DIR in [m["mountPath"] for m in container["volumeMounts"]], name
        # LOCK_OUTPUTS are written by a backup given a lock, and only by one: declared for
        # another, they would fail its step (no default).
        names = {p["name"] for p in parameters}
        if _locked(container["args"]):
            assert set(LOCK_OUTPUTS) <= names, name
            locked += 1
        written = set(OUTPUTS) | (set(LOCK_OUTPUTS) if _locked(container["args"]) else set())
        for parameter in parameters:
            assert parameter["name"] in written, name
            # Exactly the path: a default would turn a file the streamer stopped writing into
            # an empty parameter instead of a failed step.
            assert parameter["valueFrom"] == {"path": f"{OUTPUTS_DIR}/{parameter['name']}"}, name
            declared += 1
        used = re.findall(r"\{\{outputs\.parameters\.([^}]+)\}\}", json.dumps(template))
        assert set(used) <= {p["name"] for p in parameters}, name
    assert declared >= len(OUTPUT_PARAMETERS)
    assert locked, "no golden case renders a locked backup"


def test_a_drill_declares_what_the_streamer_writes_on_success_and_on_failure() -> None:
    drills = [(n, t) for n, t in TEMPLATES if t["name"] == DRILL_TEMPLATE]
    assert {_options(t["container"]["args"])[0] for _, t in drills} == {
        Subcommand.VERIFY,
        Subcommand.RESTORE,
    }
    assert set(DRILL_OUTPUTS) == set(OUTPUTS) | set(FAILURE_OUTPUTS)
    for name, template in drills:
        args = template["container"]["args"]
        assert _options(args)[_options(args).index(Flag.OUTPUTS) + 1] == OUTPUTS_DIR, name
        assert OUTPUTS_DIR in [m["mountPath"] for m in template["container"]["volumeMounts"]]
        parameters = template["outputs"]["parameters"]
        assert [p["name"] for p in parameters] == list(DRILL_OUTPUTS), name
        for parameter in parameters:
            # Either set is missing in one outcome: an empty default keeps Argo collecting.
            path = f"{OUTPUTS_DIR}/{parameter['name']}"
            assert parameter["valueFrom"] == {"path": path, "default": ""}, name
            assert parameter["globalName"] == parameter["name"], name


# --- command lines -----------------------------------------------------------------------------


def _main_args() -> list[tuple[str, list[str]]]:
    return [(name, template["container"]["args"]) for name, template in TEMPLATES]


def test_the_generator_writes_every_subcommand() -> None:
    assert {args[0] for _, args in _main_args()} == {
        Subcommand.BACKUP,
        Subcommand.RESTORE,
        Subcommand.VERIFY,
    }


@pytest.mark.parametrize(("name", "args"), [pytest.param(*c, id=c[0]) for c in _main_args()])
def test_the_streamer_accepts_every_command_line_written(name: str, args: list[str]) -> None:
    written = {a for a in _options(args) if a.startswith("--")}
    assert written <= FLAGS, f"flags outside streamer.contract.Flag: {written - FLAGS}"
    command = streamer.commands[args[0]]
    accepted = {opt for param in command.params for opt in param.opts}
    assert written <= accepted, f"{args[0]} does not take {written - accepted}"
    # Argo's {{…}} and Kubernetes' $(…) are resolved before the streamer starts; as values
    # they parse as they are.
    with streamer.make_context("streamer", list(args), resilient_parsing=False) as parent:
        ctx = command.make_context(args[0], list(args[1:]), parent=parent, resilient_parsing=False)
    assert isinstance(ctx.command, click.Command)
    if args[0] == Subcommand.VERIFY:
        assert ctx.params["outputs"] == Path(OUTPUTS_DIR)
        assert ctx.params["expected_sha256"] == "{{workflow.parameters.sha256}}"
        return
    assert ctx.params["container"]
    assert ctx.params["command"] == tuple(args[args.index(Flag.END_OF_OPTIONS) + 1 :])
    if args[0] == Subcommand.BACKUP:
        assert ctx.params["outputs"] == Path(OUTPUTS_DIR)
        template = ctx.params["path_template"]
        if template.startswith(ENCODED_TEMPLATE_PREFIX):
            template = base64.b64decode(template.removeprefix(ENCODED_TEMPLATE_PREFIX)).decode()
        variables = dict(_as_started(v).split("=", 1) for v in ctx.params["variables"])
        assert render_path(template, variables)


def _as_started(arg: str) -> str:
    """An argument as the streamer sees it, after Argo's substitutions."""
    arg = arg.replace("{{workflow.name}}", "wf-abc12").replace("{{workflow.namespace}}", "db")
    return arg.replace("{{workflow.parameters.path}}", "some/key.sql")


# --- environment -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "template"), [pytest.param(*t, id=t[0]) for t in TEMPLATES])
def test_the_environment_of_the_streamer_is_the_contracts(
    name: str, template: dict[str, Any]
) -> None:
    container = template["container"]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) <= ENV, f"variables outside streamer.contract.Env: {set(env) - ENV}"
    for variable, path in (
        (Env.POD_NAME, "metadata.name"),
        (Env.POD_NAMESPACE, "metadata.namespace"),
    ):
        assert env[variable]["valueFrom"] == {"fieldRef": {"fieldPath": path}}
    assert {Env.AWS_ACCESS_KEY_ID, Env.AWS_SECRET_ACCESS_KEY} <= set(env)
    # Kubernetes expands $(NAME) only for variables the container defines; any other stays
    # literal and would reach the streamer as a Pod named "$(POD_NAME)".
    referenced = set(
        re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(_options(container["args"])))
    )
    assert referenced or container["args"][0] == Subcommand.VERIFY, name  # verify execs nothing
    assert referenced <= set(env), name


# --- what the generator loads ------------------------------------------------------------------


def test_validating_and_rendering_load_no_native_library_of_the_data_plane() -> None:
    script = textwrap.dedent(
        """
        import json, sys
        from generator.cli import main

        for path in sys.argv[2:]:
            for command in (["validate"], ["render"]):
                main([*command, "-f", path], standalone_mode=False)
        names = set(json.loads(sys.argv[1]))
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in names)
        print("LOADED=" + json.dumps(loaded))
        """
    )
    inputs = [str(p) for p in sorted(GOLDEN.glob("*.in.yaml"))]
    assert str(GOLDEN / "seed.in.yaml") in inputs
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(NOT_LOADED), *inputs],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "kind: CronWorkflow" in done.stdout  # the seed rendered
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("LOADED=")]
    assert json.loads(line.removeprefix("LOADED=")) == []
