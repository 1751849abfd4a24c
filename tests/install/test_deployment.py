"""The controller Deployment: one replica replaced by stopping first, probes on the port the
controller serves /healthz on, bounded resources, the restricted Pod Security profile, and the
same release image as the Workflows it renders, with flags the real CLI accepts.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any

import click
import pytest

from generator.cli import main
from generator.render import DEFAULT_IMAGE, DEFAULT_SERVICE_ACCOUNT
from streamer import __version__
from tests.install.conftest import DOCKERFILE, find

UNITS = {"": 1.0, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _quantity(text: str | int) -> float:
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(text))
    assert match is not None, text
    return float(match.group(1)) * UNITS[match.group(2)]


def _controller_params(container: dict[str, Any]) -> dict[str, Any]:
    """The container's command line as ``backup-gen`` parses it (nothing is run)."""
    assert container["command"] == ["backup-gen"]
    args = container["args"]
    assert args[0] == "controller"
    command = main.commands["controller"]
    with click.Context(main) as parent:
        context = command.make_context("controller", list(args[1:]), parent=parent)
        return dict(context.params)


def test_one_replica_stopped_before_the_next_starts(deployment: dict[str, Any]) -> None:
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()


def test_the_flags_are_the_clis(container: dict[str, Any]) -> None:
    params = _controller_params(container)
    assert params["all_namespaces"] is True
    assert params["namespaces"] == ()
    assert params["service_account"] == DEFAULT_SERVICE_ACCOUNT
    assert params["liveness_port"] is not None
    assert params["metrics_port"] is not None


def test_a_flag_the_cli_does_not_take_is_refused(container: dict[str, Any]) -> None:
    broken = {**container, "args": [*container["args"], "--liveness-port=0"]}
    with pytest.raises(click.BadParameter, match="not in the range"):
        _controller_params(broken)
    with pytest.raises(click.NoSuchOption):
        _controller_params({**container, "args": [*container["args"], "--replicas=2"]})


def test_probes_ask_healthz_on_the_liveness_port(container: dict[str, Any]) -> None:
    params = _controller_params(container)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"healthz": params["liveness_port"], "metrics": params["metrics_port"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}, probe


def test_requests_and_limits_are_set_and_ordered(container: dict[str, Any]) -> None:
    resources = container["resources"]
    for name in ("cpu", "memory"):
        request, limit = resources["requests"][name], resources["limits"][name]
        assert 0 < _quantity(request) <= _quantity(limit), name


def test_the_pod_is_restricted(deployment: dict[str, Any], container: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(field), field


def test_the_pod_runs_as_the_images_user(deployment: dict[str, Any]) -> None:
    users = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert len(users) == 1, "the final stage names one numeric user"
    uid, gid = map(int, users[0])
    context = deployment["spec"]["template"]["spec"]["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)
    assert uid != 0


def test_the_only_writable_path_is_the_images_home(
    deployment: dict[str, Any], container: dict[str, Any]
) -> None:
    home = re.search(r"^\s*HOME=(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert home is not None
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == home.group(1)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert set(volumes) == {mount["name"]}
    assert "emptyDir" in volumes[mount["name"]]


def test_the_image_is_the_release_the_workflows_use(container: dict[str, Any]) -> None:
    assert container["image"] == DEFAULT_IMAGE
    assert _controller_params(container)["image"] == DEFAULT_IMAGE
    assert DEFAULT_IMAGE.rpartition(":")[2] == __version__ == version("backup-operator")


def test_only_metrics_may_connect(
    installed: list[dict[str, Any]], container: dict[str, Any]
) -> None:
    policy = find(installed, "NetworkPolicy", "backup-operator")["spec"]
    deployment = find(installed, "Deployment", "backup-operator")
    assert policy["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
