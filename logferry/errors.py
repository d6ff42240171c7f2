"""One exception tree for every failure logferry reports to a user.

The CLI turns any :class:`LogferryError` into a one-line message and a non-zero exit; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LogferryError(Exception):
    """Base of every error that is the user's environment or input, not a bug in logferry."""

    exit_code = 1


class ConfigError(LogferryError):
    """The configuration file or a command-line option is invalid."""

    exit_code = 2


class DevStackError(LogferryError):
    """The local Kafka/OpenSearch dev stack could not be installed, started or stopped."""


class ToolMissingError(DevStackError):
    """A program the dev stack needs (java, mvn) is not installed or too old."""


class PortInUseError(DevStackError):
    """A port the dev stack wants to listen on is already taken by another process."""


class ServiceStartError(DevStackError):
    """A dev-stack service exited or never became ready; the message carries its log tail."""


class KafkaUnavailableError(LogferryError):
    """The Kafka brokers could not be reached or refused the request."""


class KafkaSecurityError(KafkaUnavailableError):
    """Kafka rejected our SASL login, or TLS with it failed (an untrusted certificate): a
    setting to fix, which no retry can."""


class OpenSearchUnavailableError(LogferryError):
    """OpenSearch could not be reached, or answered with an error that is not about one document."""


class OpenSearchSecurityError(OpenSearchUnavailableError):
    """OpenSearch rejected our credentials (401/403), or TLS with it failed (an untrusted
    certificate): a setting to fix, which no retry can."""


class NoIndexError(LogferryError):
    """No index matches the logferry index pattern: nothing was indexed yet, or the prefix is
    not the one the indexer writes."""


class CheckpointError(LogferryError):
    """The agent's checkpoint file is unreadable or corrupt; it is never silently reset."""


class WireFormatError(LogferryError):
    """A Kafka record does not follow the logferry wire schema."""
