"""The typed configuration shared by agent, indexer and CLI. Units are in the field names."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from logferry.config._agent_sources import ContainerLogSettings, MultilineSettings
from logferry.config._processing import ProcessingSettings


class _Section(BaseModel):
    # Unknown keys are typos far more often than forward compatibility: reject them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    brokers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"], min_length=1)
    topic: str = Field("logferry.logs", min_length=1)
    client_id: str = "logferry"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    # Prefer sasl_password_file or $LOGFERRY_KAFKA_SASL_PASSWORD; never logged either way.
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    request_timeout_s: float = Field(30.0, gt=0)

    @field_validator("brokers")
    @classmethod
    def _host_port(cls, value: list[str]) -> list[str]:
        for broker in value:
            host, sep, port = broker.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"broker {broker!r} is not host:port")
        return value


class OpenSearchSettings(_Section):
    urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:9200"], min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    verify_certs: bool = True
    request_timeout_s: float = Field(30.0, gt=0)
    index_prefix: str = Field("logferry-logs", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    # Index per document: placeholders {prefix}, {date} (yyyy.MM.dd), {month} (yyyy.MM) and
    # {namespace}; it must start with "{prefix}-" so the template and searches cover it.
    index_name: str = "{prefix}-{date}"
    number_of_shards: int = Field(1, ge=1, le=1024)
    # None: one replica where a second node exists, none on a single node.
    number_of_replicas: int | None = Field(None, ge=0)
    refresh_interval_s: float = Field(1.0, gt=0)
    # How parsed app fields ("attributes") are mapped. "flat_object": one field, every value a
    # keyword by its dotted path; no key or type can ever make OpenSearch reject a line.
    # "fields": real fields (numbers are numbers: ranges and sums work), a little cheaper to
    # index, but a key that is an object in one line and a value in another, or more than
    # index.mapping.total_fields.limit keys per index, makes a line go to the dead-letter
    # topic. Takes effect for indices created after the change (the next day's).
    attributes_mapping: Literal["flat_object", "fields"] = "flat_object"
    # gzip bulk bodies: worth it across a network, not on loopback.
    compress_requests: bool = False
    # Delete indices older than this through an ISM policy (needs the ISM plugin); None: keep.
    retention_days: int | None = Field(None, ge=1)

    @field_validator("index_name")
    @classmethod
    def _index_name(cls, value: str) -> str:
        if not value.startswith("{prefix}-"):
            raise ValueError("index_name must start with '{prefix}-'")
        try:
            value.format(prefix="p", date="d", month="m", namespace="n")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"index_name {value!r}: unknown or malformed placeholder "
                             f"({exc}); use {{prefix}}, {{date}}, {{month}}, {{namespace}}"
                             ) from exc
        return value

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"OpenSearch URL {url!r} must start with http:// or https://")
        return value


class AgentSettings(_Section):
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    state_dir: Path = Path("/var/lib/logferry/agent")
    # Where to start in a file that already existed before the agent's very first start.
    start_at: Literal["beginning", "end"] = "beginning"
    host: str | None = None
    max_line_bytes: int = Field(1024 * 1024, ge=1024)
    read_chunk_bytes: int = Field(1024 * 1024, ge=4096)
    scan_interval_s: float = Field(1.0, gt=0)
    checkpoint_interval_s: float = Field(1.0, gt=0)
    # A file whose path now names another file (rename rotation) or that was deleted is read
    # to its end and released only once it has been quiet this long.
    rotate_wait_s: float = Field(5.0, ge=0)
    # Log files held open at once. Beyond it, files wait for a handle (path and stat only),
    # and open files idle at their end give theirs up (see agent/handles.py).
    max_open_files: int = Field(1024, ge=1)
    # While files wait for a handle: an open file idle at its end, with everything read
    # acknowledged, for this long is closed (and reopened when it changes).
    close_idle_s: float = Field(5.0, ge=0)
    # While files wait for a handle: a file open this long stops reading and is closed once
    # its sent lines are acknowledged, even if busy, so that no file waits forever.
    yield_after_s: float = Field(60.0, gt=0)
    batch_max_bytes: int = Field(1024 * 1024, ge=1024)
    linger_s: float = Field(0.02, ge=0)
    compression: Literal["zstd", "gzip", "lz4", "snappy", "none"] = "zstd"
    # zstd: 1 when unset (about 10% larger batches than zstd's default 3 for ~40% less CPU,
    # the agent's biggest single cost); negative levels are faster still. gzip: 1-9, 9 when
    # unset. lz4 and snappy have no levels.
    compression_level: int | None = Field(None, ge=-7, le=22)
    max_inflight_bytes: int = Field(16 * 1024 * 1024, ge=1024 * 1024)
    # One busy file may not take the whole budget: it waits, the others keep flowing.
    max_inflight_bytes_per_file: int = Field(4 * 1024 * 1024, ge=64 * 1024)
    # Kafka record key, which picks the partition: per file (default), per pod or per host.
    # Any of them keeps each file's lines in order; coarser keys spread load less evenly.
    partition_key: Literal["file", "pod", "host"] = "file"
    metrics_port: int | None = Field(None, ge=0, le=65535)
    # Kubernetes container logs under containers.root (CRI or docker json-file).
    containers: ContainerLogSettings = Field(default_factory=ContainerLogSettings)
    # Joining stack traces across lines, for the plain files of `include`.
    multiline: MultilineSettings = Field(default_factory=MultilineSettings)


class IndexerSettings(_Section):
    group_id: str = "logferry-indexer"
    topics: list[str] = Field(default_factory=list)
    dead_letter_topic: str = "logferry.dead-letter"
    bulk_max_docs: int = Field(5000, ge=1)
    bulk_max_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    flush_interval_s: float = Field(1.0, gt=0)
    # Bulk requests in flight at once; offsets are still committed strictly in order.
    bulk_concurrency: int = Field(2, ge=1, le=64)
    max_retries: int = Field(8, ge=0)
    metrics_port: int | None = Field(None, ge=0, le=65535)
    # Parsing (JSON, logfmt, patterns), timestamps, levels, field caps.
    processing: ProcessingSettings = Field(default_factory=ProcessingSettings)


class Config(_Section):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    opensearch: OpenSearchSettings = Field(default_factory=OpenSearchSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    indexer: IndexerSettings = Field(default_factory=IndexerSettings)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
