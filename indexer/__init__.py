"""The indexer: source (Kafka group) -> stages (decode, shape) -> sink (OpenSearch bulk)."""
