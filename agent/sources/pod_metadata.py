"""Pod metadata (labels, annotations, node) from the Kubernetes API server: an optional cache.

One list of this node's pods, then one watch from the list's resourceVersion: never a request
per file or per line. The cache answers from memory; when the API server is slow, down or
forbids the agent, lookups return ``None`` and logs are read without labels rather than
delayed or lost. Nothing here raises into the tail loop: failures are logged as structured
events on ``logferry.agent.k8s`` and retried with jittered backoff.

Protocol, as the Kubernetes API documents it:

- ``GET /api/v1/pods?fieldSelector=spec.nodeName=<node>`` lists the pods bound to this node and
  returns the list's ``metadata.resourceVersion`` (pages are followed through ``continue``);
- ``...&watch=1&resourceVersion=<rv>&allowWatchBookmarks=true`` streams one JSON event a line,
  ``{"type": "ADDED|MODIFIED|DELETED|BOOKMARK|ERROR", "object": {...}}``. A watch ends normally
  after ``timeoutSeconds`` and is resumed from the last resourceVersion seen; an ``ERROR`` with
  code 410 (Gone: the resourceVersion was compacted) or any failure means list again.

Deleted pods stay known for ``deleted_pod_retention_s``: the agent often reads a pod's last
lines after the pod is gone. Static pods: the kubelet's log directory carries the static pod's
UID (a config hash), which its mirror pod in the API has as annotation
``kubernetes.io/config.mirror``; mirror pods are known under both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from logferry.config._agent_sources import ContainerLogSettings, PodMetadataSettings

if TYPE_CHECKING:
    # Imported where used: aiohttp costs ~0.3 CPU-s at every agent start, and only the
    # metadata cache (off by default) needs it.
    import aiohttp

log = logging.getLogger("logferry.agent.k8s")

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
# Annotation values longer than this are not kept (kubectl's last-applied-configuration can be
# hundreds of KiB a pod, and nothing in the agent reads it): memory stays bounded.
MAX_ANNOTATION_VALUE_CHARS = 4096
# One watch line is one pod object; etcd refuses objects above ~1.5 MiB.
_MAX_LINE_BYTES = 8 * 1024 * 1024
_PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class PodMeta:
    namespace: str
    name: str
    uid: str  # the API object's uid (for a static pod, its mirror pod's)
    labels: dict[str, str]
    annotations: dict[str, str]
    node_name: str | None


class ApiError(Exception):
    """A response from the API server other than success (HTTP status or watch ERROR)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message


class _Gone(Exception):
    """HTTP 410 / watch ERROR 410: the resourceVersion is too old; list again."""


class PodMetadataCache:
    """This node's pods by UID, kept current by a list + watch in a background task.

    :meth:`get` is a dict lookup; :meth:`wait_for` is for a newly found file only (once per
    file, never per line). ``clock``, ``sleep`` and ``rng`` are injectable for tests.
    """

    def __init__(self, settings: PodMetadataSettings, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rng: random.Random | None = None,
                 backoff_initial_s: float = 0.5,
                 backoff_max_s: float = 30.0,
                 token_refresh_s: float = 60.0,
                 watch_timeout_s: int = 300,
                 watch_idle_timeout_s: float = 150.0,
                 request_timeout_s: float = 30.0,
                 max_deleted_pods: int = 10_000) -> None:
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._token_refresh_s = token_refresh_s
        self._watch_timeout_s = watch_timeout_s
        # Bookmarks come about once a minute: a watch silent for longer than this is dead.
        self._watch_idle_timeout_s = watch_idle_timeout_s
        self._request_timeout_s = request_timeout_s
        self._max_deleted = max_deleted_pods
        # Every key a pod is known under (uid, and a mirror pod's config hash) -> its metadata.
        self._pods: dict[str, PodMeta] = {}
        # Keys of deleted pods -> when the deletion was seen; insertion order is time order.
        self._deleted: dict[str, float] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._synced = asyncio.Event()
        self._healthy = False
        self._rv = ""
        self._token: str | None = None
        self._token_read_at: float | None = None
        self._logged: set[tuple[object, ...]] = set()
        self._events_applied = 0

    # -- lookups ------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """True while the last list succeeded and its watch has not failed since."""
        return self._healthy

    @property
    def synced(self) -> bool:
        """True once a first list succeeded (the cache may be stale after that, never empty)."""
        return self._synced.is_set()

    @property
    def live_pods(self) -> int:
        """Pods on this node now (O(pods): for logs and metrics, not per line)."""
        return len({m.uid for k, m in self._pods.items() if k not in self._deleted})

    @property
    def deleted_pods(self) -> int:
        """Deleted pods still kept for their retention (O(pods))."""
        return len({self._pods[k].uid for k in self._deleted if k in self._pods})

    def get(self, pod_uid: str) -> PodMeta | None:
        """The pod's metadata, from memory; deleted pods within their retention included."""
        return self._pods.get(pod_uid)

    async def wait_for(self, pod_uid: str, timeout_s: float) -> PodMeta | None:
        """The pod's metadata as soon as it is known, or None after ``timeout_s``."""
        meta = self._pods.get(pod_uid)
        if meta is not None or timeout_s <= 0 or self._task is None:
            return meta
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(pod_uid, set())
        waiters.add(future)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await future
        finally:
            waiters.discard(future)
            if not waiters and self._waiters.get(pod_uid) is waiters:
                del self._waiters[pod_uid]
        return self._pods.get(pod_uid)

    async def wait_synced(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) for the first list; True if it arrived."""
        if not self._synced.is_set() and timeout_s > 0 and self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._synced.wait()
        return self._synced.is_set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listing and watching in the background; returns at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="pod-metadata")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_session()
        self._healthy = False
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    # -- cache updates (also what the tests drive) --------------------------------------------

    def prune(self, now: float | None = None) -> int:
        """Forget deleted pods older than the retention; returns how many keys went."""
        cutoff = (self._clock() if now is None else now) - self.settings.deleted_pod_retention_s
        removed = 0
        deleted = self._deleted
        while deleted:
            key, deleted_at = next(iter(deleted.items()))
            if deleted_at > cutoff:
                break
            del deleted[key]
            self._pods.pop(key, None)
            removed += 1
        return removed

    def _put(self, meta: PodMeta) -> None:
        for key in _keys(meta):
            self._deleted.pop(key, None)
            self._pods[key] = meta
            waiters = self._waiters.pop(key, None)
            if waiters:
                for future in waiters:
                    if not future.done():
                        future.set_result(None)

    def _mark_deleted(self, key: str, meta: PodMeta, now: float) -> None:
        self._pods[key] = meta
        self._deleted.pop(key, None)  # re-inserted at the end: the order stays time order
        self._deleted[key] = now
        while len(self._deleted) > self._max_deleted:
            oldest = next(iter(self._deleted))
            del self._deleted[oldest]
            self._pods.pop(oldest, None)

    def _replace_all(self, pods: list[PodMeta]) -> None:
        """A fresh list: pods missing from it were deleted while nobody watched."""
        now = self._clock()
        listed = {key: meta for meta in pods for key in _keys(meta)}
        for key, meta in list(self._pods.items()):
            if key not in listed and key not in self._deleted:
                self._mark_deleted(key, meta, now)
        for meta in pods:
            self._put(meta)
        self.prune(now)

    def _apply(self, line: bytes) -> None:
        """One watch event line."""
        event = orjson.loads(line)
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            raise ValueError("watch event without an object")
        kind = event.get("type")
        obj: dict[str, Any] = event["object"]
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise _Gone(str(obj.get("message") or "resourceVersion too old"))
            raise ApiError(code if isinstance(code, int) else 0, str(obj.get("reason") or ""),
                           str(obj.get("message") or ""))
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            meta = _pod_meta(obj)
            if meta is not None:
                if kind == "DELETED":
                    now = self._clock()
                    for key in _keys(meta):
                        self._mark_deleted(key, meta, now)
                else:
                    self._put(meta)
        elif kind != "BOOKMARK":  # a type this version does not know: its rv still counts
            log.debug("unknown watch event type", extra={"event": "k8s_watch_unknown",
                                                         "type": kind})
        rv = _resource_version(obj)
        if rv:
            self._rv = rv
        self._events_applied += 1
        self.prune()

    # -- the list + watch loop ----------------------------------------------------------------

    async def _run(self) -> None:
        import aiohttp

        backoff = self._backoff_initial_s
        while True:
            self._events_applied = 0
            try:
                url, node = self._target()
                session = await self._get_session(url)
                await self._list(session, url, node)
                self._healthy = True
                self._synced.set()
                self._log_once(("synced",), logging.INFO,
                               "pod metadata: listed this node's pods; watching",
                               {"event": "k8s_synced", "node": node, "pods": self.live_pods,
                                "resource_version": self._rv})
                while True:
                    if await self._watch(session, url, node):
                        self._progressed()  # ended by the server's timeoutSeconds: resume
                    else:
                        # Not even a bookmark: a quiet node, or something in between that
                        # closes streams at once. Resume anyway, but never in a tight loop.
                        await self._sleep(self._backoff_initial_s
                                          * (0.5 + 0.5 * self._rng.random()))
            except asyncio.CancelledError:
                raise
            except _Gone as exc:
                # Normal after a long watch or an API server restart: list again at once. A
                # Gone before any event came is an error like any other (backoff), or a
                # list + watch loop could hammer the API server.
                if self._events_applied:
                    self._progressed()
                    backoff = self._backoff_initial_s
                    log.info("pod metadata: watch expired; listing again",
                             extra={"event": "k8s_watch_gone", "error": str(exc)})
                    await self._sleep(self._rng.uniform(0, self._backoff_initial_s))
                    continue
                self._failed(exc)
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError, ValueError,
                    _NotInCluster) as exc:
                self._failed(exc)
            except Exception as exc:  # a bug here must not stop the cache for good
                log.exception("pod metadata: unexpected error", extra={
                    "event": "k8s_error", "error": repr(exc)})
                self._healthy = False
            if self._events_applied:
                # The watch worked for a while before failing: start the backoff afresh.
                self._progressed()
                backoff = self._backoff_initial_s
            # A new connection (and CA) for the next attempt; the old one may be wedged.
            await self._close_session()
            delay = backoff * (0.5 + 0.5 * self._rng.random())
            backoff = min(backoff * 2, self._backoff_max_s)
            await self._sleep(delay)

    def _progressed(self) -> None:
        """The watch delivered: problems logged so far are over, log them again if they recur."""
        self._logged.clear()
        self._logged.add(("synced",))

    def _target(self) -> tuple[str, str]:
        s = self.settings
        url = s.api_url
        if url is None:
            host = os.environ.get("KUBERNETES_SERVICE_HOST")
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise _NotInCluster("KUBERNETES_SERVICE_HOST is not set (not in a cluster?): "
                                    "set agent.containers.metadata.api_url")
            url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        node = s.node_name or os.environ.get("NODE_NAME")
        if not node:
            raise _NotInCluster("no node name: set agent.containers.metadata.node_name or "
                                "$NODE_NAME (downward API, spec.nodeName)")
        return url, node

    async def _get_session(self, url: str) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl_context() if url.startswith(
                "https://") else False, limit=2)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _ssl_context(self) -> ssl.SSLContext:
        ca_file = self.settings.ca_file
        if ca_file.is_file():
            return ssl.create_default_context(cafile=str(ca_file))
        self._log_once(("ca",), logging.WARNING,
                       "pod metadata: CA file not found; verifying the API server against the "
                       "system's trusted CAs", {"event": "k8s_ca_missing",
                                                "ca_file": str(ca_file)})
        return ssl.create_default_context()

    def _headers(self, force_reread: bool = False) -> dict[str, str]:
        now = self._clock()
        if (force_reread or self._token_read_at is None
                or now - self._token_read_at >= self._token_refresh_s):
            self._token_read_at = now
            self._token = self._read_token()
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _read_token(self) -> str | None:
        path: Path = self.settings.token_file
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            self._log_once(("token", exc.errno), logging.WARNING,
                           "pod metadata: ServiceAccount token not readable; requests go "
                           "without one", {"event": "k8s_token_missing",
                                           "token_file": str(path), "error": exc.strerror})
            return None
        return token or None

    async def _list(self, session: aiohttp.ClientSession, url: str, node: str) -> None:
        import aiohttp

        pods: list[PodMeta] = []
        params = {"fieldSelector": f"spec.nodeName={node}", "limit": str(_PAGE_SIZE),
                  # "0": served from the API server's watch cache, not etcd (a DaemonSet's
                  # agents all relist at once after an API server restart).
                  "resourceVersion": "0"}
        timeout = aiohttp.ClientTimeout(total=self._request_timeout_s)
        while True:
            async with session.get(f"{url}/api/v1/pods", params=params,
                                   headers=self._headers(), timeout=timeout) as resp:
                if resp.status != 200:
                    raise await self._api_error(resp)
                body = orjson.loads(await resp.read())
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise ValueError("pod list without items")
            for obj in body["items"]:
                meta = _pod_meta(obj) if isinstance(obj, dict) else None
                if meta is not None:
                    pods.append(meta)
            list_meta = body.get("metadata")
            if not isinstance(list_meta, dict):
                raise ValueError("pod list without metadata")
            rv = list_meta.get("resourceVersion")
            cont = list_meta.get("continue")
            if not cont:
                break
            params = {"fieldSelector": f"spec.nodeName={node}", "limit": str(_PAGE_SIZE),
                      "continue": str(cont)}
        if not isinstance(rv, str) or not rv:
            raise ValueError("pod list without a resourceVersion")
        self._replace_all(pods)
        self._rv = rv

    async def _watch(self, session: aiohttp.ClientSession, url: str, node: str) -> int:
        """One watch request, until the server ends it (normal) or something fails (raises).

        Returns how many events it delivered."""
        import aiohttp

        events = 0
        server_timeout = int(self._watch_timeout_s * (1 + self._rng.random()))
        params = {"fieldSelector": f"spec.nodeName={node}", "watch": "1",
                  "resourceVersion": self._rv, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(server_timeout)}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._request_timeout_s,
                                        sock_read=self._watch_idle_timeout_s)
        async with session.get(f"{url}/api/v1/pods", params=params, headers=self._headers(),
                               timeout=timeout) as resp:
            if resp.status == 410:
                raise _Gone("watch refused: resourceVersion too old")
            if resp.status != 200:
                raise await self._api_error(resp)
            buf = bytearray()
            async for chunk in resp.content.iter_any():
                buf += chunk
                start = 0
                while (end := buf.find(b"\n", start)) >= 0:
                    if end > start:
                        self._apply(bytes(buf[start:end]))
                        events += 1
                    start = end + 1
                del buf[:start]
                if len(buf) > _MAX_LINE_BYTES:
                    raise ValueError("watch event larger than 8 MiB")
            if buf.strip():
                self._apply(bytes(buf))
                events += 1
        return events

    async def _api_error(self, resp: aiohttp.ClientResponse) -> ApiError:
        import aiohttp

        reason, message = resp.reason or "", ""
        with contextlib.suppress(aiohttp.ClientError, ValueError, TimeoutError):
            body = orjson.loads(await resp.read())
            if isinstance(body, dict):  # a metav1.Status
                reason = str(body.get("reason") or reason)
                message = str(body.get("message") or "")
        if resp.status == 401:
            self._headers(force_reread=True)  # the token may have rotated under us
        return ApiError(resp.status, reason, message)

    def _failed(self, exc: Exception) -> None:
        self._healthy = False
        key: tuple[object, ...]
        extra: dict[str, object]
        if isinstance(exc, ApiError):
            key = ("api", exc.status, exc.message)
            extra = {"event": "k8s_api_error", "status": exc.status, "reason": exc.reason,
                     "api_message": exc.message}
            level = logging.ERROR
            if exc.status == 401:
                message = ("pod metadata: the API server rejected the ServiceAccount token "
                           "(401): is it mounted (automountServiceAccountToken) and current?")
            elif exc.status == 403:
                message = ("pod metadata: the ServiceAccount lacks get/list/watch on pods "
                           "(403): bind it to a ClusterRole that grants them")
            else:
                message = "pod metadata: API request failed; retrying"
                level = logging.WARNING
        elif isinstance(exc, _NotInCluster):
            key, level = ("config", str(exc)), logging.ERROR
            message, extra = f"pod metadata: {exc}", {"event": "k8s_config_error"}
        else:
            key, level = ("error", type(exc).__name__, str(exc)), logging.WARNING
            message = "pod metadata: API server unreachable or the stream broke; retrying"
            extra = {"event": "k8s_connection_error", "error": repr(exc)}
        if self._log_once(key, level, message, extra):
            self._logged.discard(("synced",))  # so that the recovery is logged too

    def _log_once(self, key: tuple[object, ...], level: int, message: str,
                  extra: Mapping[str, object]) -> bool:
        """The first of each distinct problem at ``level``, repeats at debug, until the watch
        works again. True if it was the first."""
        if key in self._logged:
            log.debug(message, extra=dict(extra))
            return False
        if len(self._logged) >= 256:  # bounded, even for errors whose text always differs
            self._logged.clear()
        self._logged.add(key)
        log.log(level, message, extra=dict(extra))
        return True


class _NotInCluster(Exception):
    """No API URL or node name: a configuration problem, retried anyway (env may appear)."""


# -- pure helpers -----------------------------------------------------------------------------


def pod_allowed(meta: PodMeta | None, settings: ContainerLogSettings) -> bool:
    """Whether a pod's logs are read, by its exclude annotation and label filters.

    An unknown pod (``None``: the API is slow, down, or forbids us) is allowed: a log line is
    never lost because metadata was late; at worst an excluded pod's first file is read.
    """
    if meta is None:
        return True
    if meta.annotations.get(settings.exclude_annotation, "").strip().lower() == "true":
        return False
    labels = meta.labels
    filters = settings.metadata
    if any(labels.get(k) == v for k, v in filters.exclude_pod_labels.items()):
        return False
    return all(labels.get(k) == v for k, v in filters.include_pod_labels.items())


def k8s_fields(ref_fields: Mapping[str, Any], meta: PodMeta | None) -> dict[str, Any]:
    """The record's ``k8s`` object: the path's fields, plus ``labels`` and ``node`` if known.

    Label keys have "." replaced by "_" (``app.kubernetes.io/name`` ->
    ``app_kubernetes_io/name``): OpenSearch reads dots in a field name as object nesting, so
    the labels ``app`` and ``app.kubernetes.io/name`` on two pods would map ``app`` both as a
    keyword and as an object, and every document of the second kind would be rejected.
    """
    out = dict(ref_fields)
    if meta is None:
        return out
    if meta.labels:
        out["labels"] = {k.replace(".", "_"): v for k, v in sorted(meta.labels.items())}
    if meta.node_name:
        out["node"] = meta.node_name
    return out


def _keys(meta: PodMeta) -> tuple[str, ...]:
    mirror = meta.annotations.get(MIRROR_ANNOTATION)
    return (meta.uid, mirror) if mirror and mirror != meta.uid else (meta.uid,)


def _str_map(value: object, max_value_chars: int | None = None) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)
            and (max_value_chars is None or len(v) <= max_value_chars)}


def _pod_meta(obj: Mapping[str, Any]) -> PodMeta | None:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return None
    namespace, name, uid = metadata.get("namespace"), metadata.get("name"), metadata.get("uid")
    if not (isinstance(namespace, str) and isinstance(name, str) and isinstance(uid, str)
            and uid):
        return None
    spec = obj.get("spec")
    node = spec.get("nodeName") if isinstance(spec, dict) else None
    return PodMeta(namespace, name, uid, _str_map(metadata.get("labels")),
                   _str_map(metadata.get("annotations"), MAX_ANNOTATION_VALUE_CHARS),
                   node if isinstance(node, str) and node else None)


def _resource_version(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    rv = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
    return rv if isinstance(rv, str) and rv else None
