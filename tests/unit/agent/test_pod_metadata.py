"""The pod metadata cache against a real local HTTP server speaking the API's list + watch."""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import ValidationError

from agent.sources.kubernetes import PodLogRef
from agent.sources.pod_metadata import (
    MAX_ANNOTATION_VALUE_CHARS,
    MIRROR_ANNOTATION,
    PodMeta,
    PodMetadataCache,
    k8s_fields,
    pod_allowed,
)
from logferry.config._agent_sources import ContainerLogSettings, PodMetadataSettings

pytestmark = pytest.mark.timeout(10)

NODE = "node-1"
LOGGER = "logferry.agent.k8s"


def pod(uid: str, name: str = "", namespace: str = "default", node: str = NODE,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"namespace": namespace, "name": name or f"pod-{uid}", "uid": uid}
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"kind": "Pod", "metadata": metadata, "spec": {"nodeName": node}}


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message}


class FakeApiServer:
    """``GET /api/v1/pods``: list (with field selector and paging) and a watch whose events the
    test pushes. Real HTTP on 127.0.0.1; ``stop``/``start`` take it down and back up."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.pods: dict[str, dict[str, Any]] = {}
        self.rv = 100
        self.fail: tuple[int, dict[str, Any]] | None = None  # every request answers this
        self.page_size = 2  # small, so that paging is exercised
        self.requests: list[dict[str, str]] = []
        self.auth: list[str | None] = []
        self._watches: list[asyncio.Queue[bytes | None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def watching(self) -> int:
        return len(self._watches)

    def count(self, watch: bool) -> int:
        return sum(1 for q in self.requests if ("watch" in q) == watch)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/pods", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.ssl_context)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        self.close_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- what the test does on the "cluster" --------------------------------------------------

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        line = orjson.dumps({"type": kind, "object": obj}) + b"\n"
        for q in self._watches:
            q.put_nowait(line)

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return obj

    def add(self, obj: dict[str, Any], notify: bool = True) -> None:
        kind = "MODIFIED" if obj["metadata"]["uid"] in self.pods else "ADDED"
        self.pods[obj["metadata"]["uid"]] = self._stamp(obj)
        if notify:
            self._event(kind, obj)

    def delete(self, uid: str, notify: bool = True) -> None:
        obj = self._stamp(self.pods.pop(uid))
        if notify:
            self._event("DELETED", obj)

    def bookmark(self) -> None:
        self.rv += 1
        self._event("BOOKMARK", {"kind": "Pod", "metadata": {"resourceVersion": str(self.rv)}})

    def gone(self) -> None:
        self._event("ERROR", status(410, "Expired", "too old resource version: 1 (200)"))

    def close_watches(self) -> None:
        for q in self._watches:
            q.put_nowait(None)

    # -- HTTP ---------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.requests.append(query)
        self.auth.append(request.headers.get("Authorization"))
        if self.fail is not None:
            return web.json_response(self.fail[1], status=self.fail[0])
        selector = query.get("fieldSelector", "")
        if not selector.startswith("spec.nodeName="):
            return web.json_response(status(400, "BadRequest", "no selector"), status=400)
        node = selector.removeprefix("spec.nodeName=")
        if "watch" in query:
            return await self._watch(request)
        items = sorted((p for p in self.pods.values() if p["spec"]["nodeName"] == node),
                       key=lambda p: str(p["metadata"]["uid"]))
        start = int(query.get("continue", "0"))
        page = items[start:start + self.page_size]
        metadata = {"resourceVersion": str(self.rv)}
        if start + self.page_size < len(items):
            metadata["continue"] = str(start + self.page_size)
        return web.json_response({"kind": "PodList", "metadata": metadata, "items": page})

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(request)
        q: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._watches.append(q)
        try:
            while (line := await q.get()) is not None:
                await resp.write(line)
        finally:
            self._watches.remove(q)
        await resp.write_eof()
        return resp


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def eventually(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Poll: the cache's state changes in its own task, on events from another."""
    for _ in range(int(timeout_s / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def rotate(token_file: Path, token: str) -> None:
    token_file.write_text(token)


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    srv = FakeApiServer()
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("token-1\n")
    return path


CacheFactory = Callable[..., Awaitable[PodMetadataCache]]


@pytest.fixture
async def make_cache(server: FakeApiServer, token_file: Path,
                     tmp_path: Path) -> AsyncIterator[CacheFactory]:
    caches: list[PodMetadataCache] = []

    async def make(**kwargs: Any) -> PodMetadataCache:
        settings = PodMetadataSettings(enabled=True, api_url=server.url, token_file=token_file,
                                       ca_file=tmp_path / "no-ca.crt", node_name=NODE,
                                       **kwargs.pop("settings", {}))
        kwargs.setdefault("backoff_initial_s", 0.01)
        kwargs.setdefault("backoff_max_s", 0.04)
        kwargs.setdefault("rng", random.Random(7))
        cache = PodMetadataCache(settings, **kwargs)
        caches.append(cache)
        await cache.start()
        return cache

    yield make
    for cache in caches:
        await cache.stop()


# -- list and watch ---------------------------------------------------------------------------


async def test_initial_list_pages_and_filters_by_node(server: FakeApiServer,
                                                      make_cache: CacheFactory) -> None:
    server.add(pod("u1", labels={"app": "web"}, annotations={"team": "a"}))
    server.add(pod("u2"))
    server.add(pod("u3"))
    server.add(pod("other", node="node-2"))
    cache = await make_cache()
    assert await cache.wait_synced(3.0)
    assert cache.healthy
    meta = cache.get("u1")
    assert meta == PodMeta("default", "pod-u1", "u1", {"app": "web"}, {"team": "a"}, NODE)
    assert cache.get("u3") is not None and cache.get("other") is None
    assert cache.live_pods == 3
    lists = [q for q in server.requests if "watch" not in q]
    assert len(lists) == 2  # two pages of two
    assert lists[0]["fieldSelector"] == f"spec.nodeName={NODE}"
    assert lists[1]["continue"] == "2"
    await eventually(lambda: server.watching == 1)
    watch = next(q for q in server.requests if "watch" in q)
    assert watch["resourceVersion"] == str(server.rv)
    assert watch["allowWatchBookmarks"] == "true"
    assert watch["fieldSelector"] == f"spec.nodeName={NODE}"
    assert server.auth[0] == "Bearer token-1"


async def test_watch_added_modified_deleted(server: FakeApiServer,
                                            make_cache: CacheFactory) -> None:
    cache = await make_cache()
    await eventually(lambda: server.watching == 1)
    server.add(pod("u1", labels={"v": "1"}))
    await eventually(lambda: cache.get("u1") is not None)
    server.add(pod("u1", labels={"v": "2"}))
    await eventually(lambda: (m := cache.get("u1")) is not None and m.labels == {"v": "2"})
    server.bookmark()
    server.delete("u1")
    await eventually(lambda: cache.deleted_pods == 1)
    # Deleted, but still known: its last lines are read after deletion.
    meta = cache.get("u1")
    assert meta is not None and meta.labels == {"v": "2"}
    assert cache.live_pods == 0
    # A watch the server ends (timeoutSeconds) resumes from the last resourceVersion, no list.
    lists = server.count(watch=False)
    server.close_watches()
    await eventually(lambda: server.count(watch=True) == 2 and server.watching == 1)
    assert server.count(watch=False) == lists
    assert server.requests[-1]["resourceVersion"] == str(server.rv)
    assert cache.healthy


async def test_a_watch_ended_without_events_is_resumed_after_a_pause(
        server: FakeApiServer, make_cache: CacheFactory) -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0)

    await make_cache(sleep=sleep, backoff_initial_s=0.1)
    await eventually(lambda: server.watching == 1)
    server.close_watches()  # nothing delivered: not in a tight loop
    await eventually(lambda: server.count(watch=True) == 2 and server.watching == 1)
    assert len(delays) == 1 and 0.05 <= delays[0] <= 0.1
    assert server.count(watch=False) == 1


async def test_gone_relists(server: FakeApiServer, make_cache: CacheFactory) -> None:
    server.add(pod("u1"))
    cache = await make_cache()
    await eventually(lambda: server.watching == 1)
    server.add(pod("u2"))
    await eventually(lambda: cache.get("u2") is not None)
    # Changes the watch never delivers, then 410 Gone: only a new list can catch up.
    server.delete("u1", notify=False)
    server.add(pod("u3"), notify=False)
    server.gone()
    await eventually(lambda: cache.get("u3") is not None)
    assert server.count(watch=False) == 2
    assert cache.get("u1") is not None and cache.deleted_pods == 1  # kept, as deleted
    assert cache.live_pods == 2
    await eventually(lambda: server.watching == 1)
    assert cache.healthy


async def test_server_down_backs_off_then_recovers(server: FakeApiServer,
                                                   make_cache: CacheFactory) -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(min(delay, 0.01))

    server.add(pod("u1"))
    cache = await make_cache(sleep=sleep, backoff_initial_s=0.1, backoff_max_s=0.4)
    await eventually(lambda: server.watching == 1)
    server.bookmark()  # the watch delivers, then the server goes away
    await server.stop()
    await eventually(lambda: len(delays) >= 5)
    assert not cache.healthy
    assert cache.get("u1") is not None  # what is known stays known while the API is away
    # Exponential, jittered into [d/2, d], capped.
    for delay, cap in zip(delays, [0.1, 0.2, 0.4, 0.4, 0.4], strict=False):
        assert cap / 2 <= delay <= cap
    server.delete("u1", notify=False)
    server.add(pod("u2"), notify=False)
    await server.start()
    await eventually(lambda: cache.healthy and cache.get("u2") is not None)
    assert cache.deleted_pods == 1 and cache.get("u1") is not None
    await eventually(lambda: server.watching == 1)


async def test_deleted_pod_kept_for_the_retention_then_pruned(
        server: FakeApiServer, make_cache: CacheFactory) -> None:
    clock = FakeClock()
    cache = await make_cache(clock=clock, settings={"deleted_pod_retention_s": 300})
    await eventually(lambda: server.watching == 1)
    server.add(pod("u1"))
    server.add(pod("u2"))
    await eventually(lambda: cache.live_pods == 2)
    server.delete("u1")
    await eventually(lambda: cache.deleted_pods == 1)
    clock.now += 299
    assert cache.prune() == 0 and cache.get("u1") is not None
    clock.now += 2
    assert cache.prune() == 1
    assert cache.get("u1") is None and cache.get("u2") is not None
    # Also pruned on the next watch event, without an explicit prune.
    server.delete("u2")
    await eventually(lambda: cache.deleted_pods == 1)
    clock.now += 301
    server.bookmark()
    await eventually(lambda: cache.get("u2") is None)
    assert cache.deleted_pods == 0


async def test_deleted_pods_are_bounded(server: FakeApiServer,
                                        make_cache: CacheFactory) -> None:
    cache = await make_cache(max_deleted_pods=2)
    await eventually(lambda: server.watching == 1)
    for uid in ("a", "b", "c"):
        server.add(pod(uid))
        server.delete(uid)
    await eventually(lambda: cache.get("c") is not None)
    assert cache.deleted_pods == 2 and cache.get("a") is None


async def test_wait_for_returns_when_the_pod_appears(server: FakeApiServer,
                                                     make_cache: CacheFactory) -> None:
    cache = await make_cache()
    await eventually(lambda: server.watching == 1)
    waiter = asyncio.create_task(cache.wait_for("new", 5.0))
    await asyncio.sleep(0.02)
    assert not waiter.done()
    server.add(pod("new"))
    meta = await asyncio.wait_for(waiter, 2.0)  # well before its own 5 s
    assert meta is not None and meta.name == "pod-new"
    assert await cache.wait_for("new", 5.0) is meta  # known: at once
    assert await cache.wait_for("never", 0.05) is None
    assert not cache._waiters  # nothing left behind


async def test_wait_for_is_released_by_stop(server: FakeApiServer,
                                            make_cache: CacheFactory) -> None:
    cache = await make_cache()
    waiter = asyncio.create_task(cache.wait_for("never", 5.0))
    await asyncio.sleep(0.01)
    await cache.stop()
    assert await asyncio.wait_for(waiter, 1.0) is None


async def test_static_pod_known_by_its_mirror_hash(server: FakeApiServer,
                                                   make_cache: CacheFactory) -> None:
    server.add(pod("api-uid", name="etcd-node-1", namespace="kube-system",
                   annotations={MIRROR_ANNOTATION: "b0a5b7cbd6e7a9c8"}))
    cache = await make_cache()
    await eventually(lambda: cache.synced)
    meta = cache.get("b0a5b7cbd6e7a9c8")
    assert meta is not None and meta.uid == "api-uid" and cache.get("api-uid") is meta


async def test_huge_annotation_values_are_not_kept(server: FakeApiServer,
                                                   make_cache: CacheFactory) -> None:
    big = "x" * (MAX_ANNOTATION_VALUE_CHARS + 1)
    server.add(pod("u1", annotations={"kubectl.kubernetes.io/last-applied-configuration": big,
                                      "logferry.io/exclude": "true"}))
    cache = await make_cache()
    await eventually(lambda: cache.synced)
    meta = cache.get("u1")
    assert meta is not None and meta.annotations == {"logferry.io/exclude": "true"}


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "ca.crt", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_https_with_the_cluster_ca(tmp_path: Path, token_file: Path,
                                         tls_cert: tuple[Path, Path],
                                         caplog: pytest.LogCaptureFixture) -> None:
    cert, key = tls_cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = FakeApiServer(context)
    server.add(pod("u1"))
    await server.start()
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    trusted = PodMetadataCache(PodMetadataSettings(
        enabled=True, api_url=server.url, token_file=token_file, ca_file=cert, node_name=NODE))
    # Without the cluster's CA the server is not trusted: logged, retried, never raised.
    untrusted = PodMetadataCache(PodMetadataSettings(
        enabled=True, api_url=server.url, token_file=token_file, ca_file=tmp_path / "none",
        node_name=NODE), backoff_initial_s=0.01, backoff_max_s=0.02)
    try:
        await trusted.start()
        await untrusted.start()
        assert await trusted.wait_synced(3.0) and trusted.get("u1") is not None
        await eventually(lambda: any(getattr(r, "event", None) == "k8s_connection_error"
                                     for r in caplog.records))
        assert not untrusted.synced
        assert any(getattr(r, "event", None) == "k8s_ca_missing" for r in caplog.records)
    finally:
        await trusted.stop()
        await untrusted.stop()
        await server.stop()


# -- errors -----------------------------------------------------------------------------------


def _problems(caplog: pytest.LogCaptureFixture, status_code: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING
            and getattr(r, "status", None) == status_code]


async def test_forbidden_is_logged_once(server: FakeApiServer, make_cache: CacheFactory,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    message = ('pods is forbidden: User "system:serviceaccount:logging:logferry-agent" cannot '
               'list resource "pods" in API group "" at the cluster scope')
    server.fail = (403, status(403, "Forbidden", message))
    cache = await make_cache()
    await eventually(lambda: len(server.requests) >= 4)
    assert not cache.healthy and not cache.synced
    (record,) = _problems(caplog, 403)
    assert record.levelno == logging.ERROR
    assert "lacks get/list/watch on pods" in record.getMessage()
    assert getattr(record, "api_message", None) == message
    assert getattr(record, "event", None) == "k8s_api_error"
    # A different error is a new problem: logged once too.
    server.fail = (401, status(401, "Unauthorized", "Unauthorized"))
    await eventually(lambda: len(_problems(caplog, 401)) == 1)
    n = len(server.requests)
    await eventually(lambda: len(server.requests) >= n + 3)
    assert len(_problems(caplog, 401)) == 1 and len(_problems(caplog, 403)) == 1
    # Fixed: the cache recovers and says so.
    server.fail = None
    await eventually(lambda: cache.healthy)
    assert any(getattr(r, "event", None) == "k8s_synced" for r in caplog.records)


async def test_token_is_reread(server: FakeApiServer, make_cache: CacheFactory,
                               token_file: Path) -> None:
    clock = FakeClock()
    await make_cache(clock=clock, token_refresh_s=60)
    await eventually(lambda: server.watching == 1)
    rotate(token_file, "token-2\n")
    clock.now += 61
    server.close_watches()  # the next request (a new watch) reads the rotated token
    await eventually(lambda: server.auth[-1] == "Bearer token-2")
    # And at once after a 401, whatever the period.
    rotate(token_file, "token-3")
    server.fail = (401, status(401, "Unauthorized", "Unauthorized"))
    server.close_watches()
    await eventually(lambda: server.auth[-1] == "Bearer token-3")


async def test_missing_node_name_is_a_logged_config_error(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    cache = PodMetadataCache(PodMetadataSettings(enabled=True), backoff_initial_s=0.01,
                             backoff_max_s=0.02)
    await cache.start()
    try:
        await eventually(lambda: any(getattr(r, "event", None) == "k8s_config_error"
                                     for r in caplog.records))
        assert cache.get("x") is None and not cache.healthy
        assert await cache.wait_for("x", 0.01) is None
    finally:
        await cache.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "KUBERNETES_SERVICE_HOST" in errors[0].getMessage()


# -- pure helpers -----------------------------------------------------------------------------


def meta(labels: dict[str, str] | None = None,
         annotations: dict[str, str] | None = None) -> PodMeta:
    return PodMeta("default", "web-0", "u1", labels or {}, annotations or {}, NODE)


def containers(**metadata: Any) -> ContainerLogSettings:
    return ContainerLogSettings.model_validate({"metadata": {"enabled": True, **metadata}})


def test_unknown_pod_is_allowed() -> None:
    assert pod_allowed(None, containers(include_pod_labels={"logs": "yes"}))


@pytest.mark.parametrize("value, allowed", [("true", False), ("TRUE", False), (" True ", False),
                                            ("false", True), ("", True), ("yes", True)])
def test_exclude_annotation(value: str, allowed: bool) -> None:
    assert pod_allowed(meta(annotations={"logferry.io/exclude": value}),
                       ContainerLogSettings()) is allowed


def test_custom_exclude_annotation() -> None:
    settings = ContainerLogSettings(exclude_annotation="example.com/no-logs")
    assert not pod_allowed(meta(annotations={"example.com/no-logs": "true"}), settings)
    assert pod_allowed(meta(annotations={"logferry.io/exclude": "true"}), settings)


def test_label_filters() -> None:
    settings = containers(include_pod_labels={"logs": "on", "tier": "web"},
                          exclude_pod_labels={"noisy": "true", "env": "test"})
    assert pod_allowed(meta({"logs": "on", "tier": "web", "env": "prod"}), settings)
    assert not pod_allowed(meta({"logs": "on"}), settings)  # every include pair must match
    assert not pod_allowed(meta({"logs": "on", "tier": "db"}), settings)
    assert not pod_allowed(meta({"logs": "on", "tier": "web", "env": "test"}), settings)
    assert not pod_allowed(meta({"logs": "on", "tier": "web", "noisy": "true"}), settings)
    assert pod_allowed(meta({"anything": "x"}), containers())  # no filters: all pods


def test_k8s_fields() -> None:
    ref = PodLogRef("default", "web-0", "u1", "nginx", 2)
    assert k8s_fields(ref.wire_fields(), None) == ref.wire_fields()
    fields = k8s_fields(ref.wire_fields(), meta({"app.kubernetes.io/name": "web", "app": "x"},
                                               {"note": "not copied"}))
    assert fields == {**ref.wire_fields(), "node": NODE,
                      "labels": {"app": "x", "app_kubernetes_io/name": "web"}}
    assert "labels" not in ref.wire_fields()  # the input is not modified
    no_labels = PodMeta("default", "web-0", "u1", {}, {}, None)
    assert k8s_fields(ref.wire_fields(), no_labels) == ref.wire_fields()


def test_settings() -> None:
    settings = ContainerLogSettings()
    assert not settings.metadata.enabled and settings.metadata.wait_for_pod_s == 2.0
    assert settings.metadata.token_file == Path(
        "/var/run/secrets/kubernetes.io/serviceaccount/token")
    assert PodMetadataSettings(api_url="https://10.0.0.1:443/").api_url == "https://10.0.0.1:443"
    for bad in ({"api_url": "10.0.0.1:443"}, {"include_pod_labels": {"a": "b"}},
                {"enabled": True, "exclude_pod_labels": {"": "b"}}, {"wait_for_pod_s": -1},
                {"node_name": ""}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            PodMetadataSettings.model_validate(bad)
