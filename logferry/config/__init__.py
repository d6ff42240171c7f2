"""Typed configuration, validated when loaded."""

from logferry.config._load import load_config, read_config_file, redacted
from logferry.config._model import (
    AgentSettings,
    Config,
    IndexerSettings,
    KafkaSettings,
    OpenSearchSettings,
)

__all__ = [
    "AgentSettings",
    "Config",
    "IndexerSettings",
    "KafkaSettings",
    "OpenSearchSettings",
    "load_config",
    "read_config_file",
    "redacted",
]
