"""kmock's ``KubernetesEmulator``, extended with the API semantics the controller relies on.

What kmock gives as is: the aiohttp server, request parsing, API discovery from the declared
resources, the ``objects`` history for assertions and the reaction DSL. What this subclass
changes (the state and its rules live in :mod:`tests.controller.store`, which the synchronous
facade of :mod:`tests.controller.kubeapi` also uses directly):

- the emulated API answers every request itself, after the reactions a test registered with
  kmock's DSL (``emulator[criteria] << payload``) had their chance: such a reaction answers
  *instead of* the API, so an injected failure changes nothing (:meth:`Emulator.fail_next`). kmock's
  own fallback reactions are not registered: kmock matches each reaction against the whole
  request history on every request, which a long-running operator test cannot afford;
- ``/api/v1/namespaces[/NAME]`` is served (kmock's path parser reads it as a namespace prefix);
- lists carry ``kind: <Kind>List`` and the current resourceVersion, honour ``labelSelector``,
  ``fieldSelector``, ``limit`` and ``continue``;
- PUT, server-side apply (``application/apply-patch+yaml``, creating missing objects), JSON
  merge patch (strategic merge patch is read as one) and JSON patch, with the ``status``
  subresource and resourceVersion conflicts;
- watches (:mod:`tests.controller.watching`) resume from ``resourceVersion``, honour
  selectors, and can be dropped at will (:meth:`Emulator.drop_watches`) to test that a client
  recovers.

A failure of the emulator itself answers 500 and is kept in :attr:`Emulator.failures`, so a
test can fail on it instead of taking it for a server error it provoked.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import yaml
from kmock import KubernetesEmulator
from kmock._internal import apps, enums, k8s, parsing, references, rendering

from tests.controller.apierrors import (
    ApiError,
    bad_request,
    method_not_allowed,
    not_found,
    status_object,
    unsupported_media_type,
)
from tests.controller.selectors import FieldSelector, LabelSelector, Query
from tests.controller.store import NAMESPACES, Store
from tests.controller.watching import Watch, stream

__all__ = ["DEFAULT_VERBS", "Emulator", "Fault"]

logger = logging.getLogger(__name__)

DEFAULT_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_NAMESPACES_PATH = re.compile(r"/api/v1/namespaces(?:/(?P<name>[^/]+))?/?")
_PATCH_TYPES = {
    "application/apply-patch+yaml": "apply",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "merge",
    "application/json-patch+json": "json",
}
Body = dict[str, Any]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@attrs.define
class Fault:
    """The next ``times`` requests a reaction matches are answered with ``code``."""

    code: int
    times: int
    message: str
    #: The requests that got the failure.
    hits: list[rendering.Request] = attrs.field(factory=list)

    def __call__(self, request: rendering.Request) -> rendering.Payload:
        if len(self.hits) >= self.times:
            return StopIteration()  # kmock: this reaction is depleted, the API answers
        self.hits.append(request)
        return rendering.Response(status=self.code, payload=status_object(self.code, self.message))


@attrs.define(kw_only=True)
class Emulator(KubernetesEmulator):
    clock: Callable[[], datetime] = _utcnow
    history_limit: int = 20
    log_limit: int = 10_000
    request_limit: int = 2_000
    store: Store = attrs.field(init=False)
    failures: list[BaseException] = attrs.field(factory=list, init=False)
    _watches: set[Watch] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        # Not kmock's: its fallback reactions stay unregistered (see the module docstring).
        self.store = Store(
            self._objects,
            self._resources,
            clock=self.clock,
            history_limit=self.history_limit,
            log_limit=self.log_limit,
        )

    # -- for tests (on the server's event loop) ----------------------------------------------

    def declare(
        self,
        resource: str,
        *,
        kind: str,
        namespaced: bool = True,
        subresources: Iterable[str] = (),
        short_names: Iterable[str] = (),
        singular: str | None = None,
        verbs: Iterable[str] = DEFAULT_VERBS,
    ) -> references.resource:
        """Serve ``resource`` (``group/version/plural``, ``v1/plural`` for the core group)."""
        parsed = references.resource(resource)
        self.resources[parsed] = references.ResourceInfo(
            kind=kind,
            namespaced=namespaced,
            singular=singular or kind.lower(),
            verbs=set(verbs),
            shortnames=set(short_names),
            subresources=set(subresources),
        )
        return parsed

    def drop_watches(self, resource: references.resource | None = None) -> int:
        """Cut the connection of every open watch (of ``resource``); how many were open."""
        dropped = [w for w in self._watches if resource is None or w.resource == resource]
        for watch in dropped:
            watch.drop()
            self._watches.discard(watch)
        return len(dropped)

    def watches(self, resource: references.resource | None = None) -> int:
        return sum(1 for w in self._watches if resource is None or w.resource == resource)

    def fail_next(
        self, *criteria: Any, code: int = 409, times: int = 1, message: str | None = None
    ) -> Fault:
        """Answer the next ``times`` requests matching kmock ``criteria`` with ``code``.

        This is kmock's reaction DSL, e.g. one conflict on the next status patch of a run::

            runs = kmock.resource("backup-operator.io/v1/backupruns")
            emulator.fail_next("patch", runs, kmock.subresource("status"), code=409)
        """
        fault = Fault(code, times, message or f"injected failure {code}")
        _ = self[tuple(criteria)] << fault
        return fault

    # -- serving -----------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        await raw_request.read()
        try:
            request = await self._parse(raw_request)
            self._requests.append(request)
            if len(self._requests) > self.request_limit:
                del self._requests[: len(self._requests) - self.request_limit]
            return await self._handle(request)
        except ApiError as exc:
            return aiohttp.web.json_response(exc.status(), status=exc.code)
        except k8s.KubernetesError as exc:
            body = status_object(exc.status, exc.message or "", reason=exc.reason)
            return aiohttp.web.json_response(body, status=exc.status)
        except Exception as exc:  # a defect of the emulator: answered, and kept for the test
            logger.exception(
                "the emulated API server failed on %s %s", raw_request.method, raw_request.path_qs
            )
            self.failures.append(exc)
            message = f"the emulated API server failed: {exc!r}"
            return aiohttp.web.json_response(status_object(500, message), status=500)

    async def _parse(self, raw_request: aiohttp.web.BaseRequest) -> rendering.Request:
        match = _NAMESPACES_PATH.fullmatch(raw_request.path)
        if match is None:
            return await rendering.Request._parse(raw_request, id=len(self._requests))
        text = await raw_request.text()
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        name = match["name"]
        path = parsing.ParsedPath(group="", version="v1", plural="namespaces", name=name)
        return rendering.Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            body=await raw_request.read(),
            text=text,
            data=data,
            action=parsing.guess_k8s(
                path, enums.method(raw_request.method), dict(raw_request.query)
            ),
            resource=NAMESPACES,
            name=name,
        )

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if self._payloads:  # reactions registered by the test come first, as in kmock
            try:
                return await apps.RawHandler._handle(self, request)
            except NotImplementedError:
                pass  # none answered
            finally:
                self._payloads[:] = [p for p in self._payloads if not p._disabled.is_set()]
        return await self._emulate(request)

    async def _emulate(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        resource, method = request.resource, str(request.method.value).upper()
        if resource is None or resource.plural is None:
            if method != "GET":
                raise method_not_allowed(method, request.url.path)
            return aiohttp.web.json_response(await self._discover(request))
        if request.subresource not in (None, "status"):  # status: the store knows if it has one
            raise not_found(f"the subresource {request.subresource} of {resource.plural}")
        if request.params.get("dryRun"):
            raise bad_request("dryRun is not supported by the emulated API server")
        status_only = request.subresource == "status"
        store, namespace, name = self.store, request.namespace, request.name
        if method == "GET" and request.params.get("watch") in ("true", "1"):
            assert request._raw_request is not None
            query = self._query(request, resource)
            return await stream(
                store, request._raw_request, resource, query, dict(request.params), self._watches
            )
        if method == "GET" and name is None:
            return aiohttp.web.json_response(self._list(request, resource))
        if method == "GET" and name is not None:
            store.check_subresource(resource, status_only)
            return aiohttp.web.json_response(store.get(resource, namespace, name))
        if method == "POST" and name is None:
            created = store.create(resource, namespace, request.data)
            return aiohttp.web.json_response(created, status=201)
        if method == "PUT" and name is not None:
            body = store.replace(resource, namespace, name, request.data, status_only=status_only)
            return aiohttp.web.json_response(body)
        if method == "PATCH" and name is not None:
            return self._patch(request, resource, name, status_only)
        if method == "DELETE" and not status_only:
            return self._delete(request, resource)
        raise method_not_allowed(method, request.url.path)

    async def _discover(self, request: rendering.Request) -> rendering.Payload:
        path = request.url.path.rstrip("/")
        if path == "":
            return await self._serve_root(request)
        if path == "/version":
            return await self._serve_server_version(request)
        if path == "/api":
            return await self._serve_api(request)
        if path == "/apis":
            return await self._serve_apis(request)
        if request.resource is not None and request.resource.version is None:
            return await self._serve_group(request)
        if request.resource is not None:
            return await self._serve_version(request)
        raise not_found(f"the path {request.url.path}")

    def _query(self, request: rendering.Request, resource: references.resource) -> Query:
        try:
            labels = LabelSelector.parse(request.params.get("labelSelector"))
            fields = FieldSelector.parse(request.params.get("fieldSelector"))
        except ValueError as exc:
            raise bad_request(str(exc)) from exc
        namespace = self.store.scope(resource, request.namespace)
        return Query(namespace=namespace, name=request.name, labels=labels, fields=fields)

    def _list(self, request: rendering.Request, resource: references.resource) -> Body:
        items = self.store.list(resource, self._query(request, resource))
        token = request.params.get("continue")
        if token:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(token)))
            except (ValueError, binascii.Error) as exc:
                raise bad_request(f"invalid continue token {token!r}") from exc
            items = [item for item in items if self._sort_key(item) > after]
        try:
            limit = int(request.params.get("limit") or 0)
        except ValueError as exc:
            raise bad_request("limit must be an integer") from exc
        page = items[:limit] if limit > 0 else items
        meta: Body = {"resourceVersion": str(self.store.resource_version)}
        if len(page) < len(items):
            last = json.dumps(list(self._sort_key(page[-1]))).encode()
            meta["continue"] = base64.urlsafe_b64encode(last).decode()
            meta["remainingItemCount"] = len(items) - len(page)
        return {
            "kind": f"{self.store.kind(resource)}List",
            "apiVersion": self.store.api_version(resource),
            "metadata": meta,
            "items": page,
        }

    @staticmethod
    def _sort_key(body: Body) -> tuple[str, str]:
        meta = body.get("metadata") or {}
        return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))

    def _patch(
        self,
        request: rendering.Request,
        resource: references.resource,
        name: str,
        status_only: bool,
    ) -> aiohttp.web.StreamResponse:
        content_type = next(
            (v for k, v in request.headers.items() if k.lower() == "content-type"), ""
        )
        content_type = content_type.split(";")[0].strip().lower()
        patch_type = _PATCH_TYPES.get(content_type)
        if patch_type is None:
            raise unsupported_media_type(content_type)
        body = request.data
        if body is None and patch_type == "apply" and request.text:
            try:
                body = yaml.safe_load(request.text)
            except yaml.YAMLError as exc:
                raise bad_request(f"the applied configuration is not YAML: {exc}") from exc
        result, created = self.store.patch(
            resource,
            request.namespace,
            name,
            body,
            patch_type=patch_type,
            status_only=status_only,
            manager=request.params.get("fieldManager"),
        )
        return aiohttp.web.json_response(result, status=201 if created else 200)

    def _delete(
        self, request: rendering.Request, resource: references.resource
    ) -> aiohttp.web.StreamResponse:
        options = request.data if isinstance(request.data, dict) else {}
        if request.name is None:
            for item in self.store.list(resource, self._query(request, resource)):
                meta = item["metadata"]
                self.store.delete(resource, meta.get("namespace"), meta["name"])
            return aiohttp.web.json_response(status_object(200, "deleted"))
        body = self.store.delete(
            resource, request.namespace, request.name, preconditions=options.get("preconditions")
        )
        if body is not None:
            return aiohttp.web.json_response(body)
        details = {"name": request.name, "kind": resource.plural, "group": resource.group}
        return aiohttp.web.json_response(status_object(200, "deleted", details=details))
