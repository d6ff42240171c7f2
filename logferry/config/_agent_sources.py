"""Agent settings for container logs and multi-line events. Units are in the field names.

Kept apart from ``_model`` so that ``_model`` can import these without a cycle.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    # Same rule as the other sections: an unknown key is a typo, reject it.
    model_config = ConfigDict(extra="forbid", frozen=True)


class MultilineSettings(_Section):
    mode: Literal["off", "indent", "start_pattern"] = "off"
    # Matched at the start of each line, on its raw UTF-8 bytes (so \w and \d are ASCII-only).
    start_pattern: str | None = None
    max_lines: int = Field(500, ge=1)
    max_bytes: int = Field(512 * 1024, ge=1024)
    # An event with no new line for this long is complete (the last event of a quiet file).
    timeout_s: float = Field(1.0, gt=0)

    @field_validator("start_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value.encode("utf-8"))
            except re.error as exc:
                raise ValueError(f"start_pattern {value!r} is not a valid regex: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _pattern_matches_mode(self) -> MultilineSettings:
        if self.mode == "start_pattern" and not self.start_pattern:
            raise ValueError("mode 'start_pattern' needs a start_pattern")
        # With "off" a leftover pattern is harmless (multiline switched off for a while); with
        # "indent" it would be silently ignored, which is never what was meant.
        if self.mode == "indent" and self.start_pattern is not None:
            raise ValueError("start_pattern is set but mode is 'indent': use mode 'start_pattern'")
        return self


_SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class PodMetadataSettings(_Section):
    """Pod labels, annotations and node from the API server (a watch of this node's pods).

    Optional and never blocking: a file whose pod is not known yet is tailed without them.
    """

    enabled: bool = False
    # None: in-cluster, https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
    api_url: str | None = None
    # The ServiceAccount's token (re-read periodically: bound tokens rotate) and the cluster CA.
    token_file: Path = _SERVICE_ACCOUNT_DIR / "token"
    ca_file: Path = _SERVICE_ACCOUNT_DIR / "ca.crt"
    # None: $NODE_NAME (set it from the downward API, spec.nodeName).
    node_name: str | None = Field(None, min_length=1)
    # How long a newly found file waits for its pod's metadata before it is tailed without it.
    wait_for_pod_s: float = Field(2.0, ge=0)
    # A deleted pod's metadata is kept this long: its last lines are often read after deletion.
    deleted_pod_retention_s: float = Field(300.0, ge=0)
    # Pods to read by label: every include pair must match, any exclude pair excludes.
    include_pod_labels: dict[str, str] = Field(default_factory=dict)
    exclude_pod_labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            if not value.startswith(("http://", "https://")):
                raise ValueError(f"api_url {value!r} must start with http:// or https://")
            value = value.rstrip("/")
        return value

    @field_validator("include_pod_labels", "exclude_pod_labels")
    @classmethod
    def _label_keys(cls, value: dict[str, str]) -> dict[str, str]:
        if any(not key for key in value):
            raise ValueError("a label key cannot be empty")
        return value

    @model_validator(mode="after")
    def _labels_need_metadata(self) -> PodMetadataSettings:
        # Labels only come from the API server: a label filter without it would match nothing
        # and silently let every pod through.
        if not self.enabled and (self.include_pod_labels or self.exclude_pod_labels):
            raise ValueError("include_pod_labels/exclude_pod_labels need enabled: true "
                             "(pod labels come from the API server)")
        return self


class ContainerLogSettings(_Section):
    enabled: bool = False
    # The kubelet's pod log directory; paths below it are <ns>_<pod>_<uid>/<container>/<n>.log.
    root: Path = Path("/var/log/pods")
    # "auto" decides per file from its first line: "{" is docker json-file, else CRI.
    format: Literal["auto", "cri", "docker"] = "auto"
    # A partial line whose last piece never comes (the container died) is sent after this.
    partial_timeout_s: float = Field(5.0, gt=0)
    # A joined line is sent in pieces flagged "split" beyond this; runtimes split at 16 KiB.
    partial_max_bytes: int = Field(1024 * 1024, ge=16 * 1024)
    # fnmatch patterns on the namespace; empty include means all, exclude wins.
    include_namespaces: list[str] = Field(default_factory=list)
    exclude_namespaces: list[str] = Field(default_factory=list)
    # Pods with this annotation set to "true" are not read (needs pod metadata from the API).
    exclude_annotation: str = Field("logferry.io/exclude", min_length=1)
    # Joining stack traces across lines, for container logs (after partial lines are joined).
    multiline: MultilineSettings = Field(default_factory=MultilineSettings)
    # Labels, annotations and node from the API server (off by default).
    metadata: PodMetadataSettings = Field(default_factory=PodMetadataSettings)

    @field_validator("include_namespaces", "exclude_namespaces")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if any(not pattern for pattern in value):
            raise ValueError("a namespace pattern cannot be empty")
        return value
