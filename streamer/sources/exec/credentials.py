"""Where the exec source's credentials and namespace come from when the CLI does not say.

In the run's Pod: the service account (token, CA, ``KUBERNETES_SERVICE_HOST``) and the
namespace file beside it; elsewhere the kubeconfig named by ``KUBECONFIG`` or
``~/.kube/config``. A kubeconfig the client cannot use is a :class:`ConfigError` that says
what to fix, never a traceback from inside the loader.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s_client
from kubernetes import config as _k8s_config

from streamer.contract import Env
from streamer.errors import ConfigError

__all__ = ["SERVICE_ACCOUNT_NAMESPACE", "default_namespace", "load_configuration"]

# The package ships partial annotations; its untyped calls stay inside this package.
k8s_config: Any = _k8s_config

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: What the kubeconfig loader lets through for a file it cannot use: its own errors, PyYAML's
#: for a syntax error, and plain Python errors for entries of the wrong shape.
KUBECONFIG_ERRORS = (
    k8s_config.ConfigException,
    yaml.YAMLError,
    OSError,
    ValueError,
    TypeError,
    AttributeError,
)


def load_configuration() -> tuple[Any, bool]:
    """A ``kubernetes.client.Configuration`` from the service account, else the kubeconfig;
    and whether it came from the service account (in a Pod)."""
    configuration = k8s_client.Configuration()
    # The exec source retries by its own policy (see .retry); urllib3's immediate retries
    # underneath would multiply its attempts.
    configuration.retries = 0
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except k8s_config.ConfigException:
        pass
    else:
        return configuration, True
    try:
        # The client reads KUBECONFIG once, at import; read it now.
        k8s_config.load_kube_config(
            config_file=_kubeconfig_path(), client_configuration=configuration
        )
    except KUBECONFIG_ERRORS as exc:
        raise ConfigError(
            "no Kubernetes credentials: not running in a Pod with a service account, "
            "and no usable kubeconfig (set KUBECONFIG or create ~/.kube/config): "
            f"{str(exc)[:300]}"
        ) from exc
    return configuration, False


def default_namespace(in_cluster: bool) -> str:
    """``$POD_NAMESPACE``, then the service account's namespace (in a Pod), then the
    kubeconfig context's, then ``default``."""
    namespace = os.environ.get(Env.POD_NAMESPACE)
    if namespace:
        return namespace
    if in_cluster:
        with contextlib.suppress(OSError):
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
            if namespace:
                return namespace
    with contextlib.suppress(*KUBECONFIG_ERRORS):
        _, active = k8s_config.list_kube_config_contexts(config_file=_kubeconfig_path())
        namespace = (active or {}).get("context", {}).get("namespace")
        if namespace:
            return str(namespace)
    return "default"


def _kubeconfig_path() -> str:
    return os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
