"""The local dev stack: real Kafka (KRaft) and OpenSearch from pinned Maven Central artifacts."""

from logferry.devstack.stack import DevStack, ServiceStatus, default_state_dir

__all__ = ["DevStack", "ServiceStatus", "default_state_dir"]
