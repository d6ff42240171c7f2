"""The node agent: sources (files) -> stages (framing) -> sink (Kafka), checkpointed on ack."""
