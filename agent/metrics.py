"""The agent's Prometheus metrics. Updated once per chunk or batch, never per line."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.lines_read = Counter("logferry_agent_lines_read", "Lines read from sources",
                                  ["kind"], registry=r)
        self.bytes_read = Counter("logferry_agent_bytes_read", "Bytes read from sources",
                                  ["kind"], registry=r)
        self.lines_acked = Counter("logferry_agent_lines_acked",
                                   "Lines acknowledged by Kafka", ["kind"], registry=r)
        self.produce_errors = Counter("logferry_agent_produce_errors",
                                      "Batches Kafka failed to acknowledge (re-sent)", registry=r)
        self.lines_split = Counter("logferry_agent_lines_split",
                                   "Lines over max_line_bytes sent as several records",
                                   registry=r)
        self.truncations = Counter("logferry_agent_truncations",
                                   "Files found shorter than already read (copytruncate)",
                                   registry=r)
        self.files_watched = Gauge("logferry_agent_files_watched",
                                   "Files the agent follows, open or not", registry=r)
        self.files_open = Gauge("logferry_agent_files_open",
                                "Log files held open (at most agent.max_open_files)", registry=r)
        self.files_waiting = Gauge("logferry_agent_files_waiting",
                                   "Files with lines to read waiting for a handle "
                                   "(agent.max_open_files reached)", registry=r)
        self.files_closed_idle = Counter("logferry_agent_files_closed_idle",
                                         "Open files closed to give their handle to a waiting "
                                         "file (reopened when they change)", registry=r)
        self.files_vanished_unread = Counter(
            "logferry_agent_files_vanished_unread",
            "Files deleted while waiting for a handle, with lines never read (lost)",
            registry=r)
        self.checkpoint_lag = Gauge("logferry_agent_checkpoint_lag_bytes",
                                    "Bytes in watched files not yet acknowledged by Kafka",
                                    registry=r)
        self.paused = Gauge("logferry_agent_paused",
                            "1 while reading is paused because Kafka is behind", registry=r)
        self.checkpoint_errors = Counter("logferry_agent_checkpoint_errors",
                                         "Failed checkpoint writes", registry=r)
