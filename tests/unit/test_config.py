from __future__ import annotations

from pathlib import Path

import pytest

from logferry.config import load_config, redacted
from logferry.errors import ConfigError


def test_defaults_are_valid() -> None:
    config = load_config(None)
    assert config.kafka.brokers == ["127.0.0.1:9092"]
    assert config.agent.max_line_bytes == 1024 * 1024


def test_toml_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[kafka]\nbrokers = ["k1:9092"]\ntopic = "t"\n[agent]\ninclude = ["/x/*"]\n')
    config = load_config(path, {"kafka": {"topic": "override", "brokers": None}})
    assert config.kafka.brokers == ["k1:9092"]
    assert config.kafka.topic == "override"
    assert config.agent.include == ["/x/*"]


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"opensearch": {"urls": ["https://os:9200"]}}')
    assert load_config(path).opensearch.urls == ["https://os:9200"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[kafka]\nbrokerz = ["a:1"]\n', "kafka.brokerz: unknown setting"),
        ('[kafka]\nbrokers = ["nohostport"]\n', "is not host:port"),
        ('[opensearch]\nurls = ["os:9200"]\n', "must start with http"),
        ("[agent]\nmax_line_bytes = 10\n", "agent.max_line_bytes"),
        ("[agent\n", "not valid TOML"),
    ],
)
def test_invalid_config_is_explained(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.toml")


def test_secrets_from_file_and_env_are_never_shown(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cr3t-file\n")
    path = tmp_path / "c.toml"
    path.write_text(f'[kafka]\nsasl_username = "u"\nsasl_password_file = "{secret}"\n')
    monkeypatch.setenv("LOGFERRY_OPENSEARCH_PASSWORD", "s3cr3t-env")
    config = load_config(path)
    assert config.kafka.sasl_password is not None
    assert config.kafka.sasl_password.get_secret_value() == "s3cr3t-file"
    assert config.opensearch.password is not None
    assert config.opensearch.password.get_secret_value() == "s3cr3t-env"
    shown = repr(config) + str(redacted(config))
    assert "s3cr3t" not in shown


def test_unreadable_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[opensearch]\npassword_file = "{tmp_path / "missing"}"\n')
    with pytest.raises(ConfigError, match=r"opensearch\.password_file: cannot read"):
        load_config(path)
