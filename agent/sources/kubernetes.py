"""Kubernetes container logs on a node: what the kubelet's path says, which pods to read.

The kubelet writes ``<root>/<namespace>_<pod>_<pod-uid>/<container>/<restart>.log`` (root
``/var/log/pods`` by default) and renames it to ``<restart>.log.<YYYYMMDD-HHMMSS>`` on rotation;
older rotated files are gzipped. A rotated file is never written again once the runtime has
reopened: the agent reads it to its end and lets it go. Only the last three path components
are read, so any root works. Everything else about a pod (labels, annotations) comes from the
API server, not here.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Iterable
from typing import NamedTuple

_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"  # DNS-1123 label
_NAMESPACE = re.compile(_LABEL)
_POD = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")  # DNS-1123 subdomain
_CONTAINER = _NAMESPACE
# A UUID for API pods, a hex config hash for static pods.
_POD_UID = re.compile(r"[0-9A-Za-z-]+")
# Live file or rename-rotated one; ".gz" and the ".tmp" of a compression in progress are out.
# The kubelet's stamp has whole seconds; fractions (other rotators, the fault suite's rotation
# twice a second) are accepted, since a name left out is a file never read.
_FILE = re.compile(r"(\d+)\.log(?:\.(\d{8}-\d{6}(?:\.\d{1,9})?))?")


class PodLogRef(NamedTuple):
    namespace: str
    pod: str
    pod_uid: str
    container: str
    restart: int
    # "YYYYMMDD-HHMMSS[.fraction]" of a rotated file, None for the live one.
    rotated: str | None = None

    def wire_fields(self) -> dict[str, str | int]:
        """The record's ``k8s`` object (see :mod:`logferry.wire`)."""
        return {"namespace": self.namespace, "pod": self.pod, "pod_uid": self.pod_uid,
                "container": self.container, "restart": self.restart}


def parse_pod_log_path(path: str) -> PodLogRef | None:
    """The pod and container a kubelet log file belongs to; None for any other path."""
    parts = path.rsplit("/", 3)
    if len(parts) < 3:
        return None
    pod_dir, container, name = parts[-3:]
    # Namespace and pod names are DNS-1123 names (lowercase alphanumerics, "-", "."), which can
    # never contain "_": splitting the directory name on "_" is unambiguous.
    fields = pod_dir.split("_")
    if len(fields) != 3:
        return None
    namespace, pod, pod_uid = fields
    file_match = _FILE.fullmatch(name)
    if (file_match is None or len(pod) > 253 or _NAMESPACE.fullmatch(namespace) is None
            or _POD.fullmatch(pod) is None or _POD_UID.fullmatch(pod_uid) is None
            or _CONTAINER.fullmatch(container) is None):
        return None
    return PodLogRef(namespace, pod, pod_uid, container, int(file_match.group(1)),
                     file_match.group(2))


def pod_glob(root: str) -> str:
    """A glob for every container log under ``root``, live and rotated.

    It also matches compressed and temporary rotation files, which a glob cannot rule out:
    keep only the paths :func:`parse_pod_log_path` accepts.
    """
    return os.path.join(glob.escape(root), "*_*_*", "*", "*.log*")


class PodFilter:
    """Which namespaces to read: ``fnmatch`` patterns, case-sensitive.

    An empty include list means every namespace; exclude wins over include.
    """

    __slots__ = ("_exclude", "_include", "exclude_namespaces", "include_namespaces")

    def __init__(self, include_namespaces: Iterable[str] = (),
                 exclude_namespaces: Iterable[str] = ()) -> None:
        self.include_namespaces = tuple(include_namespaces)
        self.exclude_namespaces = tuple(exclude_namespaces)
        self._include = _compile(self.include_namespaces)
        self._exclude = _compile(self.exclude_namespaces)

    def allows(self, namespace: str) -> bool:
        if self._exclude is not None and self._exclude.match(namespace):
            return False
        return self._include is None or self._include.match(namespace) is not None


def _compile(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
