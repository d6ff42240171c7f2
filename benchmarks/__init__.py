"""Benchmarks: logferry against a peer, in one run, on the same real Kafka and OpenSearch.

``python -m benchmarks`` (``make bench``) runs the agent and the indexer benchmarks on a
dedicated dev stack (Kafka 127.0.0.1:39092, OpenSearch 127.0.0.1:39200) and prints one table
each, with ratios. There are no thresholds: the numbers are for reading, not for failing a
build. See ``benchmarks/README.md`` for the method.
"""
