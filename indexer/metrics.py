"""The indexer's Prometheus metrics. Updated once per bulk, never per document."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IndexerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # The name predates records of many lines; what it counts is lines (documents).
        self.consumed = Counter("logferry_indexer_records_consumed",
                                "Log lines read from Kafka (a record that is not a wire "
                                "record counts as one)", registry=r)
        self.indexed = Counter("logferry_indexer_docs_indexed", "Documents created", registry=r)
        self.duplicates = Counter("logferry_indexer_docs_duplicate",
                                  "Documents already present (409 on create: a replay)",
                                  registry=r)
        self.retried = Counter("logferry_indexer_docs_retried", "Bulk items retried", registry=r)
        self.dead_lettered = Counter("logferry_indexer_dead_lettered",
                                     "Lines sent to the dead-letter topic (a record that is "
                                     "not a wire record goes whole, as one)", ["reason"],
                                     registry=r)
        self.bulk_failures = Counter("logferry_indexer_bulk_failures",
                                     "Bulk requests that failed as a whole", registry=r)
        self.bulk_latency = Histogram("logferry_indexer_bulk_seconds", "Bulk request latency",
                                      registry=r)
        self.commits = Counter("logferry_indexer_commits", "Offset commits", registry=r)
        self.lag = Gauge("logferry_indexer_consumer_lag",
                         "Kafka records (of many lines each) behind the high watermark",
                         ["topic", "partition"], registry=r)
