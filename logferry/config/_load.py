"""Loading a config file (TOML or JSON), applying overrides and resolving secrets."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import orjson
from pydantic import SecretStr, ValidationError

from logferry.config._model import Config
from logferry.errors import ConfigError

# Secrets may come from the environment so that Kubernetes Secrets mount as env vars.
_SECRET_ENV = {
    ("kafka", "sasl_password"): "LOGFERRY_KAFKA_SASL_PASSWORD",
    ("opensearch", "password"): "LOGFERRY_OPENSEARCH_PASSWORD",
}
_SECRET_FILE = {
    ("kafka", "sasl_password"): "sasl_password_file",
    ("opensearch", "password"): "password_file",
}


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = orjson.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: "
                          f"{exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table/object")
    return data


def load_config(path: Path | None = None,
                overrides: dict[str, dict[str, Any]] | None = None) -> Config:
    """Validate ``path`` (optional) merged with command-line ``overrides``."""
    data: dict[str, Any] = read_config_file(path) if path else {}
    for section, values in (overrides or {}).items():
        present = {k: v for k, v in values.items() if v is not None}
        if present:
            current = data.get(section)
            data[section] = {**(current if isinstance(current, dict) else {}), **present}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path)) from exc
    return resolve_secrets(config)


def format_validation_error(exc: ValidationError, path: Path | None) -> str:
    where = str(path) if path else "configuration"
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling)"
        problems.append(f"{loc}: {msg}")
    plural = "s" if len(problems) > 1 else ""
    return f"{where}: {len(problems)} invalid setting{plural}: " + "; ".join(problems)


def read_secret_file(path: Path, setting: str) -> str:
    """A secret kept in a file (a mounted Kubernetes Secret): its text without the final
    newline. ``setting`` names the option in the error, never the secret."""
    try:
        return path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from exc


def resolve_secrets(config: Config) -> Config:
    updates: dict[str, dict[str, Any]] = {}
    for (section, field), env_name in _SECRET_ENV.items():
        sect = getattr(config, section)
        file_field = _SECRET_FILE[(section, field)]
        secret_file: Path | None = getattr(sect, file_field)
        value: str | None = None
        if secret_file is not None:
            value = read_secret_file(secret_file, f"{section}.{file_field}")
        elif env_name in os.environ:
            value = os.environ[env_name]
        if value is not None:
            updates.setdefault(section, {})[field] = SecretStr(value)
    if not updates:
        return config
    return config.model_copy(update={
        section: getattr(config, section).model_copy(update=fields)
        for section, fields in updates.items()
    })


def redacted(config: Config) -> dict[str, Any]:
    """The effective config as plain data with every secret replaced, for `config show`."""
    data: dict[str, Any] = config.model_dump(mode="json")
    for section, field in _SECRET_ENV:
        if data[section].get(field) is not None:
            data[section][field] = "***"
    return data
