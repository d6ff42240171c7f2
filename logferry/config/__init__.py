"""Typed configuration, validated when loaded."""

from logferry.config._agent_sources import (
    ContainerLogSettings,
    MultilineSettings,
)
from logferry.config._load import load_config, read_config_file, read_secret_file, redacted
from logferry.config._model import (
    AgentSettings,
    Config,
    IndexerSettings,
    KafkaSettings,
    OpenSearchSettings,
)
from logferry.config._processing import ProcessingSettings

__all__ = [
    "AgentSettings",
    "Config",
    "ContainerLogSettings",
    "IndexerSettings",
    "KafkaSettings",
    "MultilineSettings",
    "OpenSearchSettings",
    "ProcessingSettings",
    "load_config",
    "read_config_file",
    "read_secret_file",
    "redacted",
]
