"""logferry: node log files through Kafka into OpenSearch, losing and duplicating nothing."""

__version__ = "0.1.0"
