"""``logferry dashboards import``: load logferry's saved objects into OpenSearch Dashboards.

Exposed as :data:`dashboards_group` for ``logferry.cli`` to register
(``cli.add_command(dashboards_group)``).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from logferry.config import read_secret_file
from logferry.dashboards import DEFAULT_FILE, import_saved_objects

PASSWORD_ENV = "LOGFERRY_DASHBOARDS_PASSWORD"


@click.group("dashboards")
def dashboards_group() -> None:
    """OpenSearch Dashboards saved objects: index pattern, search, visualizations, dashboard."""


@dashboards_group.command("import")
@click.option("--url", required=True, envvar="LOGFERRY_DASHBOARDS_URL",
              help="OpenSearch Dashboards base URL, e.g. http://dashboards:5601. "
                   "Env: LOGFERRY_DASHBOARDS_URL.")
@click.option("--file", "path", type=click.Path(path_type=Path, dir_okay=False),
              default=DEFAULT_FILE, show_default=True, help="Saved objects (NDJSON).")
@click.option("--username", envvar="LOGFERRY_DASHBOARDS_USERNAME",
              help="Basic-auth user. Env: LOGFERRY_DASHBOARDS_USERNAME.")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False),
              help=f"File holding the password (else env {PASSWORD_ENV}).")
@click.option("--ca-file", type=click.Path(path_type=Path, dir_okay=False),
              help="CA certificate (PEM) for an https:// URL.")
@click.option("--insecure", is_flag=True, help="Do not verify the server's TLS certificate.")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True,
              help="Seconds to wait for Dashboards.")
def dashboards_import(url: str, path: Path, username: str | None, password_file: Path | None,
                      ca_file: Path | None, insecure: bool, timeout_s: float) -> None:
    """Import (overwrite by id) the saved objects into OpenSearch Dashboards."""
    password: str | None = os.environ.get(PASSWORD_ENV)
    if password_file is not None:
        password = read_secret_file(password_file, "--password-file")
    result = import_saved_objects(url, path, username=username, password=password,
                                  verify=not insecure, ca_file=ca_file, timeout_s=timeout_s)
    click.echo(f"imported {result.get('successCount', 0)} saved objects from {path} into {url}")
