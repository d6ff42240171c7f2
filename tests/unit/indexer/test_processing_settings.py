from __future__ import annotations

from typing import Any, get_args

import pytest
from pydantic import ValidationError

from indexer.stages.parsers import PRESETS
from indexer.stages.process import Processor
from logferry.config._processing import PresetName, ProcessingSettings


def test_defaults() -> None:
    settings = ProcessingSettings()
    assert settings.parsers == ["json", "logfmt", "patterns"]
    assert settings.patterns == [] and settings.presets == []
    assert settings.target_field == "attributes"
    assert (settings.max_fields, settings.max_value_bytes, settings.max_depth) == (100, 32768, 5)
    assert settings.keep_original is False
    Processor(settings)


def test_preset_names_match_the_parser() -> None:
    assert set(get_args(PresetName)) == set(PRESETS)


def test_full_settings_build_a_processor() -> None:
    settings = ProcessingSettings.model_validate({
        "parsers": ["patterns", "json"], "patterns": [r"^(?P<word>\w+)"],
        "presets": ["nginx_access", "syslog_rfc5424"], "target_field": "app.fields",
        "drop_fields": ["a.b"], "rename_fields": {"x": "y.z"}, "max_fields": 10,
        "max_value_bytes": 64, "max_depth": 1, "keep_original": True,
    })
    Processor(settings)


def test_frozen() -> None:
    settings = ProcessingSettings()
    with pytest.raises(ValidationError):
        settings.max_fields = 5  # type: ignore[misc]


@pytest.mark.parametrize(("data", "message"), [
    ({"unknown": 1}, "Extra inputs"),
    ({"parsers": ["xml"]}, "json"),
    ({"parsers": ["json", "json"]}, "listed once"),
    ({"patterns": ["(?P<a>"]}, "does not compile"),
    ({"patterns": [r"(\w+)"]}, "no named group"),
    ({"presets": ["log4j"]}, "nginx_access"),
    ({"target_field": "log"}, "reserved"),
    ({"target_field": "event.parsed"}, "reserved"),
    ({"target_field": "_source"}, "reserved"),
    ({"target_field": "a..b"}, "single dots"),
    ({"drop_fields": [""]}, "single dots"),
    ({"rename_fields": {"a.": "b"}}, "single dots"),
    ({"rename_fields": {"a": ".b"}}, "single dots"),
    ({"max_fields": 0}, "greater than or equal"),
    ({"max_value_bytes": 10}, "greater than or equal"),
    ({"max_depth": 0}, "greater than or equal"),
])
def test_rejected(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProcessingSettings.model_validate(data)


def test_root_target_allowed() -> None:
    assert ProcessingSettings(target_field="").target_field == ""
