"""Telemetry of logferry's own services: JSON logs, Prometheus metrics and a health endpoint."""

from logferry.telemetry._http import TelemetryServer
from logferry.telemetry._logs import JsonFormatter, configure_logging

__all__ = ["JsonFormatter", "TelemetryServer", "configure_logging"]
