"""The ``logferry`` command line: one entry point for the agent, the indexer, search and the
dev stack. Errors the user can fix print as one line and exit non-zero; bugs keep tracebacks."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
import orjson

# The indexer's normalized levels; not from logferry.opensearch, whose client library costs the
# agent ~0.5 CPU-s of imports at every start.
from indexer.stages.levels import LEVELS
from logferry._cli_dashboards import dashboards_group
from logferry.config import Config, load_config, redacted
from logferry.errors import LogferryError

_CONFIG_OPT = click.option(
    "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
    envvar="LOGFERRY_CONFIG", help="Config file (TOML or JSON). Env: LOGFERRY_CONFIG.")
_BROKERS_OPT = click.option("--brokers", help="Kafka bootstrap servers, comma-separated.")
_TOPIC_OPT = click.option("--topic", help="Kafka topic of log records.")
_OS_URL_OPT = click.option("--opensearch-url", "opensearch_url",
                           help="OpenSearch URL(s), comma-separated.")


def _kafka_overrides(brokers: str | None, topic: str | None) -> dict[str, Any]:
    return {"brokers": brokers.split(",") if brokers else None, "topic": topic}


def _os_overrides(url: str | None) -> dict[str, Any]:
    return {"urls": url.split(",") if url else None}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="logferry")
def cli() -> None:
    """logferry: ship container and file logs through Kafka into OpenSearch, losing and
    duplicating nothing."""


# -- dev stack -------------------------------------------------------------------------------

@cli.group()
def dev() -> None:
    """A local Kafka broker and OpenSearch node for trying logferry and for its tests."""


def _dev_options(fn: Any) -> Any:
    fn = click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False),
                      envvar="LOGFERRY_DEV_DIR",
                      help="Where data, logs and pids live (default: "
                           "$XDG_STATE_HOME/logferry/dev).")(fn)
    fn = click.option("--kafka-port", type=int, default=9092, show_default=True,
                      help="Kafka listener port (the controller uses the next one).")(fn)
    fn = click.option("--opensearch-port", type=int, default=9200, show_default=True,
                      help="OpenSearch HTTP port (transport uses this + 100).")(fn)
    return fn


def _stack(state_dir: Path | None, kafka_port: int, opensearch_port: int,
           secure: bool | None = None) -> Any:
    from logferry.devstack import DevStack

    return DevStack(state_dir, kafka_port=kafka_port, opensearch_port=opensearch_port,
                    secure=secure)


def _print_status(statuses: Any) -> None:
    for st in statuses:
        state = "ready" if st.ready else ("running, not ready" if st.pid else "stopped")
        pid = f"pid {st.pid}" if st.pid else "-"
        click.echo(f"{st.name:<11} {state:<19} {st.address:<24} {pid:<10} log: {st.log_path}")


@dev.command("up")
@_dev_options
@click.option("--secure", is_flag=True,
              help="Also serve Kafka over SASL_SSL (SCRAM-SHA-512, on --kafka-port + 2) and "
                   "OpenSearch over TLS with basic auth (nginx, on --opensearch-port + 43), "
                   "with a private CA and passwords written under STATE_DIR/secure. A state "
                   "dir brought up with --secure stays secure.")
def dev_up(state_dir: Path | None, kafka_port: int, opensearch_port: int, secure: bool) -> None:
    """Fetch (first time), start and wait for Kafka and OpenSearch. Safe to run twice."""
    stack = _stack(state_dir, kafka_port, opensearch_port, secure or None)
    statuses = stack.up()
    _print_status(statuses)
    click.echo(f"Kafka:      {stack.kafka.address}\nOpenSearch: {stack.opensearch.address}")
    if stack.secure:
        _print_secure_usage(stack)


def _print_secure_usage(stack: Any) -> None:
    files = stack.secure_files
    click.echo(
        f"\nSecure endpoints (user {files.username!r}; files in {files.dir}):\n"
        f"  Kafka SASL_SSL (SCRAM-SHA-512): {stack.kafka.secure_address}  "
        f"password file: {files.kafka_password_file}\n"
        f"  OpenSearch https + basic auth:  {stack.proxy.address}  "
        f"password file: {files.opensearch_password_file}\n"
        f"  CA certificate (ssl_ca_file / ca_file): {files.ca_file}\n"
        f"Point agent, indexer and search at them with the config written to "
        f"{files.config_file}:\n"
        f"  logferry agent run --config {files.config_file} --include '/var/log/*.log' "
        f"--state-dir /tmp/logferry-agent\n"
        f"  logferry indexer run --config {files.config_file}\n"
        f"  logferry search --config {files.config_file} --since 1h\n"
        f"(or copy its [kafka] and [opensearch] sections into your own config; the passwords "
        f"can also come from $LOGFERRY_KAFKA_SASL_PASSWORD and $LOGFERRY_OPENSEARCH_PASSWORD)")


@dev.command("down")
@_dev_options
def dev_down(state_dir: Path | None, kafka_port: int, opensearch_port: int) -> None:
    """Stop the services this state directory started (data is kept)."""
    stopped = _stack(state_dir, kafka_port, opensearch_port).down()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@dev.command("status")
@_dev_options
def dev_status(state_dir: Path | None, kafka_port: int, opensearch_port: int) -> None:
    """Show whether each service runs and answers."""
    statuses = _stack(state_dir, kafka_port, opensearch_port).status()
    _print_status(statuses)
    if not all(s.ready for s in statuses):
        sys.exit(1)


# -- agent and indexer -----------------------------------------------------------------------

@cli.group()
def agent() -> None:
    """The node agent: tails log files into Kafka."""


@agent.command("run")
@_CONFIG_OPT
@_BROKERS_OPT
@_TOPIC_OPT
@click.option("--include", multiple=True, help="Glob of files to tail (repeatable).")
@click.option("--exclude", multiple=True, help="Glob of files to skip (repeatable).")
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Directory for checkpoints.")
@click.option("--start-at", type=click.Choice(["beginning", "end"]),
              help="Where to start in files that existed before the first start.")
@click.option("--metrics-port", type=int, help="Serve /metrics and /health on this port.")
def agent_run(config_path: Path | None, brokers: str | None, topic: str | None,
              include: tuple[str, ...], exclude: tuple[str, ...], state_dir: Path | None,
              start_at: str | None, metrics_port: int | None) -> None:
    """Tail files and produce every line to Kafka; checkpoint only what Kafka acknowledged."""
    config = load_config(config_path, {
        "kafka": _kafka_overrides(brokers, topic),
        "agent": {"include": list(include) or None, "exclude": list(exclude) or None,
                  "state_dir": state_dir, "start_at": start_at, "metrics_port": metrics_port},
    })
    from agent.app import Agent
    from logferry._runner import run_service
    from logferry.telemetry import configure_logging

    configure_logging(config.log_level)
    # aiokafka clients must be built inside the running event loop.
    run_service(lambda stop: Agent(config).run(stop))


@cli.group()
def indexer() -> None:
    """The indexer: consumes Kafka and bulk-loads OpenSearch."""


@indexer.command("run")
@_CONFIG_OPT
@_BROKERS_OPT
@_TOPIC_OPT
@_OS_URL_OPT
@click.option("--group", "group_id", help="Kafka consumer group id.")
@click.option("--metrics-port", type=int, help="Serve /metrics and /health on this port.")
def indexer_run(config_path: Path | None, brokers: str | None, topic: str | None,
                opensearch_url: str | None, group_id: str | None,
                metrics_port: int | None) -> None:
    """Index Kafka records into OpenSearch; commit offsets only after OpenSearch confirmed."""
    config = load_config(config_path, {
        "kafka": _kafka_overrides(brokers, topic),
        "opensearch": _os_overrides(opensearch_url),
        "indexer": {"group_id": group_id, "metrics_port": metrics_port},
    })
    from indexer.app import Indexer
    from logferry._runner import run_service
    from logferry.telemetry import configure_logging

    configure_logging(config.log_level)
    run_service(lambda stop: Indexer(config).run(stop))


@cli.group()
def dlq() -> None:
    """The dead-letter topic: records OpenSearch rejected, with the reason."""


@dlq.command("replay")
@_CONFIG_OPT
@_BROKERS_OPT
@click.option("--dead-letter-topic", help="Dead-letter topic (default from config).")
@click.option("--limit", type=click.IntRange(min=1), help="Replay at most this many records.")
@click.option("--dry-run", is_flag=True, help="Count what would be replayed; send nothing.")
def dlq_replay(config_path: Path | None, brokers: str | None, dead_letter_topic: str | None,
               limit: int | None, dry_run: bool) -> None:
    """Re-send dead-lettered records to their source topic, after the cause is fixed."""
    import asyncio

    from indexer.replay import replay_dead_letters

    config = load_config(config_path, {
        "kafka": _kafka_overrides(brokers, None),
        "indexer": {"dead_letter_topic": dead_letter_topic},
    })
    result = asyncio.run(replay_dead_letters(config, limit, dry_run))
    verb = "would replay" if dry_run else "replayed"
    click.echo(f"{verb} {result.replayed} records; skipped {result.skipped_invalid} that are "
               "not valid wire records")


# -- search ----------------------------------------------------------------------------------

@cli.command()
@click.argument("query", required=False)
@_CONFIG_OPT
@_OS_URL_OPT
@click.option("--since", help="Only lines newer than this: 15m, 2h, 7d or an ISO time.")
@click.option("--until", help="Only lines older than this: 15m, 2h, 7d or an ISO time.")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True,
              help="How many of the newest matches to print (with --follow: before following).")
@click.option("--namespace", "namespaces", multiple=True, metavar="NAME",
              help="Only lines from this Kubernetes namespace (repeatable: any of them).")
@click.option("--pod", "pods", multiple=True, metavar="NAME",
              help="Only lines from this pod (repeatable).")
@click.option("--container", "containers", multiple=True, metavar="NAME",
              help="Only lines from this container name (repeatable).")
@click.option("--level", "levels", multiple=True,
              type=click.Choice(LEVELS, case_sensitive=False),
              help="Only lines of this level (repeatable; exact, not 'this or worse').")
@click.option("--host", "hosts", multiple=True, metavar="NAME",
              help="Only lines from this host or node (repeatable).")
@click.option("--path", "paths", multiple=True, metavar="PATH",
              help="Only lines from this file path (repeatable).")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing new matches as they are indexed, like tail -f; Ctrl-C or "
                   "SIGTERM stops (exit 0).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]),
              help="text: one line per match, coloured on a terminal (default); json: one "
                   "document per line.")
@click.option("--json", "as_json", is_flag=True, help="Same as --output json.")
def search(query: str | None, config_path: Path | None, opensearch_url: str | None,
           since: str | None, until: str | None, limit: int, namespaces: tuple[str, ...],
           pods: tuple[str, ...], containers: tuple[str, ...], levels: tuple[str, ...],
           hosts: tuple[str, ...], paths: tuple[str, ...], follow: bool, output: str | None,
           as_json: bool) -> None:
    """Print the newest lines matching QUERY (OpenSearch query-string syntax on the message),
    newest first; with --follow, oldest first and then new ones as they arrive.

    Filters are exact matches and combine with AND; a repeated filter matches any of its
    values. Example: logferry search timeout --namespace shop --level error --since 1h
    """
    from logferry.opensearch import F_CONTAINER, F_HOST, F_LEVEL, F_NAMESPACE, F_PATH, F_POD
    from logferry.search import LogIndex, SearchRequest, format_line, run_search

    if as_json and output == "text":
        raise click.UsageError("--json contradicts --output text")
    if follow and until:
        raise click.UsageError("--until cannot be used with --follow")
    fmt = "json" if as_json else (output or "text")
    config = load_config(config_path, {"opensearch": _os_overrides(opensearch_url)})
    filters = tuple((field, values) for field, values in (
        (F_NAMESPACE, namespaces), (F_POD, pods), (F_CONTAINER, containers),
        (F_LEVEL, tuple(v.lower() for v in levels)), (F_HOST, hosts), (F_PATH, paths),
    ) if values)
    req = SearchRequest(query, since, until, limit, filters)
    color = fmt == "text" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    def emit(doc: dict[str, Any]) -> None:
        click.echo(orjson.dumps(doc).decode() if fmt == "json" else format_line(doc, color))

    try:
        if follow:
            from logferry.follow import follow as follow_matches
            from logferry.follow import run_until_signal

            with LogIndex(config.opensearch) as index:
                run_until_signal(lambda: follow_matches(
                    index, req, emit, lambda msg: click.echo(f"logferry: {msg}", err=True)))
            return
        docs = run_search(config.opensearch, req)
        for doc in docs:
            emit(doc)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's exit-time flush of
        # stdout from complaining about the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if not docs and fmt == "text":
        click.echo("no matching lines", err=True)


# -- config ----------------------------------------------------------------------------------

@cli.group("config")
def config_group() -> None:
    """Check and show configuration."""


@config_group.command("validate")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def config_validate(path: Path) -> None:
    """Check a config file; explain every invalid setting."""
    load_config(path)
    click.echo(f"{path}: ok")


@config_group.command("show")
@_CONFIG_OPT
def config_show(config_path: Path | None) -> None:
    """Print the effective configuration (defaults filled in, secrets masked) as JSON."""
    config: Config = load_config(config_path)
    click.echo(orjson.dumps(redacted(config), option=orjson.OPT_INDENT_2).decode())


cli.add_command(dashboards_group)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except LogferryError as exc:
        click.echo(f"logferry: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
