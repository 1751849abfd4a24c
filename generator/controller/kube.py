"""The controller's one door to the Kubernetes API: carry out a Plan, read and list objects.

Every reconcile decides purely (:mod:`generator.controller.plan`); this module does what was
decided, in order, through the official client's ``ApiClient`` (configuration, authentication,
TLS and connection pooling) with plain JSON requests: the generated API classes and their
pydantic models are not used. The client is synchronous; the operator calls this module from
worker threads.

Writes:

* server-side apply of whole objects and of the ``status`` subresource (``PATCH`` with
  ``application/apply-patch+yaml``, field manager ``backup-operator``, conflicts forced);
* create-if-absent (409 AlreadyExists is success), delete (404 is success), merge patches of
  labels and annotations;
* finalizers: a merge patch of the whole list with the ``resourceVersion`` it was read at, so a
  concurrent change answers 409 and the read-modify-write is tried again. Given the object as
  the caller last saw it (``seen``, from the watch), the patch is sent at once at that version,
  and only a 409 costs the read;
* core/v1 Events, best effort (a failure is logged, never fails the plan), named by what they
  say (:attr:`~generator.controller.plan.EmitEvent.name`): one decided twice is posted once.

Each request is tried up to ``attempts`` times when the failure is temporary. Errors::

    GeneratorError
    └── KubeError               a request failed; the message names the request, never a body
        ├── KubeConfigError     no configuration: neither in a cluster, nor a kubeconfig
        ├── TemporaryKubeError  409 Conflict, 429, 5xx, the network: retry later (``delay``)
        └── PermanentKubeError  the API refused the request (400, 403, 422…): report it

Request and response bodies are never logged, nor put in a message: a Secret's data would leak.
The API server's own error message is kept (it says what to fix), except for Secrets.

The module is longer than most here on purpose: it is the one door, and every request's
translation of errors, retries and the rule about Secrets is easier to keep right in one file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as _k8s_config
from kubernetes.client.exceptions import ApiException

from generator.controller.names import FIELD_MANAGER
from generator.controller.plan import (
    Action,
    AddFinalizer,
    Apply,
    ApplyStatus,
    Create,
    Delete,
    DeleteStoredObject,
    EmitEvent,
    ObjectRef,
    Patch,
    Plan,
    RemoveFinalizer,
)
from generator.errors import GeneratorError
from generator.models import API_VERSION

__all__ = [
    "Kube",
    "KubeConfigError",
    "KubeError",
    "PermanentKubeError",
    "TemporaryKubeError",
    "load_configuration",
]

log = logging.getLogger(__name__)

# The package ships partial annotations; its untyped calls stay inside this module.
k8s_config: Any = _k8s_config

Body = dict[str, Any]
T = TypeVar("T")

ARGO = "argoproj.io/v1alpha1"
#: (apiVersion, kind) -> (plural, namespaced): the kinds the controller reads and writes.
RESOURCES: Mapping[tuple[str, str], tuple[str, bool]] = {
    (API_VERSION, "BackupStorage"): ("backupstorages", False),
    (API_VERSION, "BackupSchedule"): ("backupschedules", True),
    (API_VERSION, "BackupRun"): ("backupruns", True),
    (ARGO, "Workflow"): ("workflows", True),
    (ARGO, "CronWorkflow"): ("cronworkflows", True),
    (ARGO, "WorkflowTemplate"): ("workflowtemplates", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "Event"): ("events", True),
}
#: Connect and read timeouts of one request, in seconds.
REQUEST_TIMEOUT = (5.0, 30.0)
#: How often the loaded credentials are refreshed (see _refreshed_at_most_every).
REFRESH_EVERY = 1.0
#: Objects per request of a listing.
LIST_PAGE = 500
#: Tries of one request (or one read-modify-write) whose failure is temporary.
ATTEMPTS = 4
#: The first retry waits up to this long (full jitter), doubling up to MAX_DELAY.
FIRST_DELAY = 0.1
MAX_DELAY = 2.0
#: How long a caller should wait before trying again after a TemporaryKubeError.
RETRY_LATER = 5.0
#: Events live in a namespace; those of cluster-scoped objects go here, as kubectl does.
EVENTS_NAMESPACE = "default"
MAX_EVENT_MESSAGE = 1024
TEMPORARY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
#: Server-side apply as the one owner of the fields we set: conflicts with others are forced.
FORCE = [("fieldManager", FIELD_MANAGER), ("force", "true")]


class KubeError(GeneratorError):
    """A request to the API server failed. ``status`` is the HTTP status, if one came back."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeConfigError(KubeError):
    """Neither in-cluster credentials nor a kubeconfig could be loaded."""


class TemporaryKubeError(KubeError):
    """Worth trying again after ``delay`` seconds: a conflict, throttling, a server error."""

    def __init__(self, message: str, status: int | None = None, delay: float = RETRY_LATER):
        super().__init__(message, status)
        self.delay = delay


class PermanentKubeError(KubeError):
    """The API server refused the request; sending it again cannot help."""


def load_configuration(kubeconfig: str | None = None) -> k8s_client.Configuration:
    """In-cluster credentials (a Pod's service account), else the kubeconfig (``KUBECONFIG``)."""
    configuration = k8s_client.Configuration()
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
            return _refreshed_at_most_every(configuration, REFRESH_EVERY)
        except k8s_config.ConfigException:
            pass
    try:
        k8s_config.load_kube_config(
            config_file=kubeconfig, client_configuration=configuration, persist_config=False
        )
    except Exception as exc:  # the loader raises whatever its YAML, files and plugins raise
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        # The loader's own words name a missing file or key, never a credential.
        said = str(exc).strip().splitlines() if isinstance(exc, k8s_config.ConfigException) else []
        detail = said[0] if said else type(exc).__name__
        raise KubeConfigError(
            f"no Kubernetes configuration: not in a cluster, and no usable kubeconfig at "
            f"{where} ({detail}); set KUBECONFIG or run in a Pod"
        ) from None
    return _refreshed_at_most_every(configuration, REFRESH_EVERY)


def _refreshed_at_most_every(
    configuration: k8s_client.Configuration, seconds: float
) -> k8s_client.Configuration:
    """The loaders' credentials refresh, run at most every ``seconds``, not before every
    request: it sets the whole configuration again each time (the host setter reads every
    proxy variable of the environment), ~0.2 ms of each request. Tokens expire in minutes."""
    hook = configuration.refresh_api_key_hook
    if hook is None:
        return configuration
    lock = threading.Lock()
    last = [-math.inf]

    def refresh(config: k8s_client.Configuration) -> None:
        with lock:
            now = time.monotonic()
            if now - last[0] < seconds:
                return
            last[0] = now
            hook(config)
            config.refresh_api_key_hook = refresh  # the loader's hook puts itself back

    configuration.refresh_api_key_hook = refresh
    return configuration


class Kube:
    """The API server through ``api_client`` (a :class:`kubernetes.client.ApiClient`)."""

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        *,
        attempts: int = ATTEMPTS,
        request_timeout: tuple[float, float] = REQUEST_TIMEOUT,
        first_delay: float = FIRST_DELAY,
    ) -> None:
        self._api = api_client
        self.attempts = attempts
        self.request_timeout = request_timeout
        self.first_delay = first_delay

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None) -> Kube:
        return cls(k8s_client.ApiClient(load_configuration(kubeconfig)))

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    # -- plans ---------------------------------------------------------------------------------

    def execute(
        self,
        plan: Plan,
        *,
        delete_stored_object: Callable[[DeleteStoredObject], None] | None = None,
        seen: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        """Carry the actions out in order; the first that fails stops the plan (and raises).

        ``delete_stored_object`` does :class:`DeleteStoredObject` (the S3 side). ``seen`` are
        bodies as the caller last saw them: a finalizer of one of them that no earlier action
        of the plan wrote to is patched at its ``resourceVersion`` without reading it first.
        """
        hints = {_key(_ref(body)): body for body in seen}
        for action in plan.actions:
            match action:
                case AddFinalizer(ref=ref, finalizer=finalizer):
                    self.add_finalizer(ref, finalizer, seen=hints.pop(_key(ref), None))
                case RemoveFinalizer(ref=ref, finalizer=finalizer):
                    self.remove_finalizer(ref, finalizer, seen=hints.pop(_key(ref), None))
                case EmitEvent():
                    self.perform(action)  # tells of the object, leaves its version alone
                case _:
                    hints.pop(_key(_written(action)), None)  # its version moves on
                    self.perform(action, delete_stored_object=delete_stored_object)

    def perform(
        self,
        action: Action,
        *,
        delete_stored_object: Callable[[DeleteStoredObject], None] | None = None,
    ) -> None:
        match action:
            case Apply(body=body):
                self.apply(body)
            case ApplyStatus(ref=ref, status=status):
                self.apply_status(ref, status)
            case Create(body=body):
                self.create(body)
            case Patch(ref=ref, labels=labels, annotations=annotations):
                self.patch_metadata(ref, labels=labels, annotations=annotations)
            case AddFinalizer(ref=ref, finalizer=finalizer):
                self.add_finalizer(ref, finalizer)
            case RemoveFinalizer(ref=ref, finalizer=finalizer):
                self.remove_finalizer(ref, finalizer)
            case Delete(ref=ref, propagation=propagation):
                self.delete(ref, propagation=propagation)
            case DeleteStoredObject():
                if delete_stored_object is None:
                    raise PermanentKubeError(f"cannot delete {action.key}: no object store given")
                delete_stored_object(action)
            case EmitEvent():
                self.emit_event(action)

    # -- reads ---------------------------------------------------------------------------------

    def get(self, ref: ObjectRef) -> Body | None:
        """The object, or None if it does not exist (or is another incarnation than ``ref.uid``)."""
        response = self._send("GET", ref, f"read {ref}", missing_ok=True)
        if response.status == 404:
            return None
        body = response.json(f"read {ref}")
        if ref.uid is not None and (body.get("metadata") or {}).get("uid") != ref.uid:
            return None
        return body

    def list_objects(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[Body]:
        """Every object of the kind (in ``namespace``, or everywhere), matching ``labels``."""
        return list(self.iter_objects(api_version, kind, namespace=namespace, labels=labels))

    def iter_objects(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        page_size: int = LIST_PAGE,
    ) -> Iterator[Body]:
        """:meth:`list_objects`, read ``page_size`` objects a request (``limit`` and
        ``continue``), so only one page is held at a time."""
        ref = ObjectRef(api_version, kind, "", namespace)
        what = f"list {kind}s" + (f" in {namespace}" if namespace else "")
        selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items())
        query = [("labelSelector", selector)] if selector else []
        query.append(("limit", str(page_size)))
        token = ""
        while True:
            page = query + ([("continue", token)] if token else [])
            listed = self._send("GET", ref, what, collection=True, query=page).json(what)
            for item in listed.get("items") or []:
                yield {"apiVersion": api_version, "kind": kind, **item}
            token = str((listed.get("metadata") or {}).get("continue") or "")
            if not token:
                return

    # -- writes --------------------------------------------------------------------------------

    def apply(self, body: Mapping[str, Any]) -> None:
        """Server-side apply of the whole object: created if absent, our fields set if not."""
        ref = _ref(body)
        self._send("PATCH", ref, f"apply {ref}", body=dict(body), content_type=APPLY, query=FORCE)
        log.debug("applied %s", ref)  # every reconcile applies: mostly no change

    def apply_status(self, ref: ObjectRef, status: Mapping[str, Any]) -> bool:
        """Server-side apply of the status subresource; False if the object is gone."""
        metadata = {"name": ref.name, "namespace": ref.namespace, "uid": ref.uid}
        body = {
            "apiVersion": ref.api_version,
            "kind": ref.kind,
            "metadata": {k: v for k, v in metadata.items() if v},
            "status": dict(status),
        }
        return self._write_status(ref, body, APPLY, f"apply the status of {ref}")

    def merge_status(self, ref: ObjectRef, status: Mapping[str, Any]) -> bool:
        """A merge patch of the status subresource (lists are replaced); False if gone."""
        return self._write_status(
            ref, {"status": dict(status)}, MERGE, f"patch the status of {ref}"
        )

    def create(self, body: Mapping[str, Any]) -> bool:
        """Create the object unless one of its name exists; True if it was created now."""
        ref = _ref(body)
        response = self._send(
            "POST", ref, f"create {ref}", collection=True, body=dict(body), conflict_ok=True
        )
        if response.status == 409:
            log.debug("%s exists already", ref)
            return False
        log.info("created %s", ref)
        return True

    def patch_metadata(
        self,
        ref: ObjectRef,
        *,
        labels: Mapping[str, str | None] | None = None,
        annotations: Mapping[str, str | None] | None = None,
    ) -> bool:
        """A merge patch of labels and annotations (None removes a key); False if gone."""
        metadata: Body = {"labels": dict(labels or {}), "annotations": dict(annotations or {})}
        metadata = {k: v for k, v in metadata.items() if v}
        if not metadata:
            return True
        if ref.uid:
            metadata["uid"] = ref.uid  # a precondition: another incarnation answers 409
        what = f"patch the metadata of {ref}"
        body = {"metadata": metadata}
        response = self._send("PATCH", ref, what, body=body, content_type=MERGE, missing_ok=True)
        if response.status == 404:
            return False
        log.info("patched the metadata of %s", ref)
        return True

    def add_finalizer(
        self, ref: ObjectRef, finalizer: str, *, seen: Mapping[str, Any] | None = None
    ) -> None:
        """Add ``finalizer`` unless it is there, or the object is gone or being deleted."""
        if seen is None or not self._edit_finalizers(ref, finalizer, add=True, body=seen):
            self._retrying(lambda: self._edit_finalizers(ref, finalizer, add=True))

    def remove_finalizer(
        self, ref: ObjectRef, finalizer: str, *, seen: Mapping[str, Any] | None = None
    ) -> None:
        """Remove ``finalizer`` if it is there; an object already gone is fine."""
        if seen is None or not self._edit_finalizers(ref, finalizer, add=False, body=seen):
            self._retrying(lambda: self._edit_finalizers(ref, finalizer, add=False))

    def delete(self, ref: ObjectRef, *, propagation: str = "Background") -> None:
        """Delete the object; one already gone (or replaced by another incarnation) is fine."""
        options: Body = {"apiVersion": "v1", "kind": "DeleteOptions"}
        options["propagationPolicy"] = propagation
        if ref.uid:
            options["preconditions"] = {"uid": ref.uid}
        response = self._send(
            "DELETE", ref, f"delete {ref}", body=options, missing_ok=True, conflict_ok=True
        )
        if response.status in (404, 409):  # 409: the uid precondition; the object meant is gone
            log.debug("%s is gone already", ref)
            return
        log.info("deleted %s", ref)

    def emit_event(self, event: EmitEvent) -> None:
        """Post a core/v1 Event on ``event.regarding``; failures are logged, never raised."""
        regarding = event.regarding
        namespace = regarding.namespace or EVENTS_NAMESPACE
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        involved = {
            "apiVersion": regarding.api_version,
            "kind": regarding.kind,
            "name": regarding.name,
            "namespace": regarding.namespace,
            "uid": regarding.uid,
        }
        body: Body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event.name, "namespace": namespace},
            "involvedObject": {k: v for k, v in involved.items() if v},
            "reason": event.reason,
            "message": event.message[:MAX_EVENT_MESSAGE],
            "type": event.type,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        what = f"post the Event {event.reason} on {regarding}"
        try:
            response = self._send(
                "POST",
                ObjectRef("v1", "Event", "", namespace),
                what,
                collection=True,
                body=body,
                conflict_ok=True,
            )
        except KubeError as exc:
            log.warning("cannot %s: %s", what, exc)
            return
        if response.status == 409:
            log.debug("the Event %s on %s was posted already", event.reason, regarding)

    # -- requests ------------------------------------------------------------------------------

    def _write_status(self, ref: ObjectRef, body: Body, content_type: str, what: str) -> bool:
        query = FORCE if content_type == APPLY else [("fieldManager", FIELD_MANAGER)]
        response = self._send(
            "PATCH",
            ref,
            what,
            subresource="status",
            body=body,
            content_type=content_type,
            query=query,
            missing_ok=True,
        )
        if response.status == 404:
            log.debug("%s is gone; its status is not written", ref)
            return False
        log.debug("wrote the status of %s", ref)
        return True

    def _edit_finalizers(
        self, ref: ObjectRef, finalizer: str, *, add: bool, body: Mapping[str, Any] | None = None
    ) -> bool:
        """One read-modify-write of the finalizers (the read skipped when given ``body``); a
        change in between answers 409. False if ``body`` was given and is out of date."""
        seen = body is not None
        if body is None:
            body = self.get(ref)
        if body is None:
            return True
        metadata = body.get("metadata") or {}
        current = list(metadata.get("finalizers") or [])
        if (finalizer in current) == add:
            return True
        if add and metadata.get("deletionTimestamp"):
            log.debug("%s is being deleted; %s is not added", ref, finalizer)
            return True
        wanted = [*current, finalizer] if add else [f for f in current if f != finalizer]
        precondition = {k: metadata[k] for k in ("resourceVersion", "uid") if metadata.get(k)}
        if seen and "resourceVersion" not in precondition:
            return False  # no version to hold the patch to: read it
        verb = "add" if add else "remove"
        response = self._request(
            "PATCH",
            ref,
            f"{verb} the finalizer {finalizer} of {ref}",
            body={"metadata": {"finalizers": wanted, **precondition}},
            content_type=MERGE,
            missing_ok=not add,
            conflict_ok=seen,
        )
        if response.status == 409:
            log.debug("%s changed since it was seen; its finalizers are read again", ref)
            return False
        if response.status != 404:
            log.info("%s the finalizer %s of %s", "added" if add else "removed", finalizer, ref)
        return True

    def _send(self, method: str, ref: ObjectRef, what: str, **options: Any) -> _Response:
        """:meth:`_request`, tried again while it fails temporarily."""
        return self._retrying(lambda: self._request(method, ref, what, **options))

    def _retrying(self, request: Callable[[], T]) -> T:
        """``request`` tried up to ``attempts`` times while it fails temporarily."""
        for attempt in range(1, self.attempts):
            try:
                return request()
            except TemporaryKubeError as exc:
                window = min(MAX_DELAY, self.first_delay * 2 ** (attempt - 1))
                delay = random.uniform(0, window)  # noqa: S311 -- jitter, not cryptography
                log.info(
                    "%s (attempt %d of %d), again in %.2fs", exc, attempt, self.attempts, delay
                )
                time.sleep(delay)
        return request()

    def _request(
        self,
        method: str,
        ref: ObjectRef,
        what: str,
        *,
        collection: bool = False,
        subresource: str = "",
        query: list[tuple[str, str]] | None = None,
        body: Body | None = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
        conflict_ok: bool = False,
    ) -> _Response:
        """One request: a 2xx (or an allowed 404/409) response, else TemporaryKubeError or
        PermanentKubeError naming ``what``."""
        path = _path(ref, collection=collection) + (f"/{subresource}" if subresource else "")
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            method, url, headers, serialized, post = self._api.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or None,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            raw: Any = self._api.call_api(
                method, url, headers, serialized, post, _request_timeout=self.request_timeout
            )
            response = _Response(int(raw.status), raw.reason or "", raw.read(), ref.kind)
        except ApiException as exc:  # how the client wraps TLS and protocol failures
            raise TemporaryKubeError(f"cannot {what} at {self.host}: {exc.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TemporaryKubeError(
                f"cannot {what} at {self.host}: {type(exc).__name__}"
            ) from None
        log.debug("%s %s: HTTP %d", method, path, response.status)
        if 200 <= response.status < 300:
            return response
        if (response.status == 404 and missing_ok) or (response.status == 409 and conflict_ok):
            return response
        if response.status in TEMPORARY_STATUSES:
            raise TemporaryKubeError(response.message(what), response.status)
        raise PermanentKubeError(response.message(what), response.status)


class _Response:
    def __init__(self, status: int, reason: str, raw: bytes, kind: str) -> None:
        self.status = status
        self.reason = reason
        self._raw = raw
        self._kind = kind

    def json(self, what: str) -> Body:
        try:
            data = json.loads(self._raw) if self._raw else {}
        except ValueError:
            raise TemporaryKubeError(
                f"cannot {what}: the API server sent unreadable JSON"
            ) from None
        return data if isinstance(data, dict) else {}

    def message(self, what: str) -> str:
        """``what`` failed, and the API's Status message (never for a Secret: it may quote it)."""
        detail = ""
        if self._kind != "Secret":
            try:
                data = json.loads(self._raw)
            except ValueError:
                data = None
            if isinstance(data, dict) and data.get("kind") == "Status":
                detail = str(data.get("message") or "")
        text = f"cannot {what}: HTTP {self.status} {self.reason}".rstrip()
        return f"{text}: {detail}" if detail else text


def _written(action: Action) -> ObjectRef:
    """The object an action writes to (one that writes none: its ref, a harmless key)."""
    match action:
        case Apply(body=body) | Create(body=body):
            return _ref(body)
        case ApplyStatus(ref=ref) | Patch(ref=ref) | Delete(ref=ref):
            return ref
    return ObjectRef("", "", "")


def _key(ref: ObjectRef) -> tuple[str, str, str]:
    return (ref.kind, ref.namespace or "", ref.name)


def _ref(body: Mapping[str, Any]) -> ObjectRef:
    meta = body.get("metadata") or {}
    return ObjectRef(
        str(body.get("apiVersion", "")),
        str(body.get("kind", "")),
        str(meta.get("name", "")),
        meta.get("namespace"),
    )


def _path(ref: ObjectRef, *, collection: bool = False) -> str:
    try:
        plural, namespaced = RESOURCES[ref.api_version, ref.kind]
    except KeyError:
        raise PermanentKubeError(
            f"the controller does not handle {ref.api_version} {ref.kind}"
        ) from None
    prefix = "/api/v1" if ref.api_version == "v1" else f"/apis/{ref.api_version}"
    if namespaced and ref.namespace:
        prefix += f"/namespaces/{_segment(ref.namespace)}"
    elif namespaced and not collection:
        raise PermanentKubeError(f"{ref} names no namespace")
    path = f"{prefix}/{plural}"
    return path if collection else f"{path}/{_segment(ref.name)}"


def _segment(value: str) -> str:
    """A path segment; names never hold '/' (the API server would refuse them anyway)."""
    if not value or "/" in value or value in (".", ".."):
        raise PermanentKubeError(f"{value!r} is not a valid name")
    return value
