"""The client's credentials refresh runs at most so often, not before every request."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client as k8s_client

from generator.controller.kube import _refreshed_at_most_every, load_configuration
from tests.controller.kubeapi import TOKEN, write_kubeconfig


def _configuration(calls: list[str]) -> k8s_client.Configuration:
    """A configuration whose refresh hook, as the loaders' does, sets itself again."""
    configuration = k8s_client.Configuration()
    configuration.api_key["BearerToken"] = "first"

    def hook(config: k8s_client.Configuration) -> None:
        calls.append("refreshed")
        config.api_key["BearerToken"] = f"token-{len(calls)}"
        config.refresh_api_key_hook = hook

    configuration.refresh_api_key_hook = hook
    return configuration


def test_the_refresh_runs_once_in_its_period() -> None:
    calls: list[str] = []
    configuration = _refreshed_at_most_every(_configuration(calls), 3600)
    tokens = {configuration.get_api_key_with_prefix("BearerToken") for _ in range(50)}
    assert calls == ["refreshed"]
    assert tokens == {"token-1"}


def test_the_refresh_runs_again_once_its_period_passed() -> None:
    calls: list[str] = []
    configuration = _refreshed_at_most_every(_configuration(calls), 0)
    for _ in range(3):
        configuration.get_api_key_with_prefix("BearerToken")
    assert calls == ["refreshed"] * 3  # the hook put itself back: still throttled, and called


def test_a_kubeconfig_token_still_authenticates(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1")
    configuration = load_configuration(str(path))
    for _ in range(3):
        assert configuration.get_api_key_with_prefix("BearerToken") == f"Bearer {TOKEN}"
