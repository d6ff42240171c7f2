from __future__ import annotations

import pytest

from indexer.sinks.template import index_template, ism_policy
from indexer.stages.document import IndexNamer
from logferry.config import OpenSearchSettings
from logferry.errors import ConfigError
from logferry.wire import LogRecord


def _rec(ts: str = "2026-11-25T23:59:59.9Z", ns: str | None = "shop") -> LogRecord:
    return LogRecord(ts=ts, host="h", kind="container", path="/p", fid="f", off=0, line="x",
                     k8s={"namespace": ns} if ns else None)


def test_default_is_daily_by_agent_timestamp() -> None:
    assert IndexNamer("{prefix}-{date}", "logs")(_rec()) == "logs-2026.11.25"


def test_placeholders() -> None:
    namer = IndexNamer("{prefix}-{namespace}-{month}", "logs")
    assert namer(_rec()) == "logs-shop-2026.11"
    assert namer(_rec(ns=None)) == "logs-none-2026.11"


@pytest.mark.parametrize("bad", ["{date}-{prefix}", "{prefix}-{day}", "{prefix}-{"])
def test_bad_index_names_are_config_errors(bad: str) -> None:
    from logferry.config import load_config

    with pytest.raises(ConfigError, match=r"opensearch\.index_name"):
        load_config(None, {"opensearch": {"index_name": bad}})


def test_template_settings() -> None:
    auto = index_template(OpenSearchSettings())["template"]["settings"]
    assert auto["auto_expand_replicas"] == "0-1" and auto["refresh_interval"] == "1s"
    fixed = index_template(OpenSearchSettings(number_of_replicas=2, number_of_shards=3,
                                              refresh_interval_s=30))["template"]["settings"]
    assert (fixed["number_of_replicas"], fixed["number_of_shards"],
            fixed["refresh_interval"]) == (2, 3, "30s")
    assert "auto_expand_replicas" not in fixed


def test_ism_policy_deletes_after_retention() -> None:
    policy = ism_policy(OpenSearchSettings(index_prefix="logs", retention_days=14))["policy"]
    hot, delete = policy["states"]
    assert hot["transitions"][0]["conditions"] == {"min_index_age": "14d"}
    assert delete["actions"] == [{"delete": {}}]
    assert policy["ism_template"][0]["index_patterns"] == ["logs-*"]


def test_bulk_lines_are_valid_ndjson_for_safe_and_odd_index_names() -> None:
    import orjson

    from indexer.stages.document import bulk_lines
    from logferry.wire import origin_id

    rec = _rec()
    for index in ("logs-shop-2026.11.25", 'Odd"Index'):
        action, doc, end = bulk_lines(index, rec, {"message": "x"}).split(b"\n")
        assert orjson.loads(action) == {"create": {"_index": index,
                                                   "_id": origin_id(rec.fid, rec.off)}}
        assert orjson.loads(doc) == {"message": "x"} and end == b""


def test_attributes_are_one_flat_object_unless_typed_fields_are_asked_for() -> None:
    default = index_template(OpenSearchSettings())["template"]["mappings"]
    assert default["properties"]["attributes"] == {"type": "flat_object"}
    assert [next(iter(t)) for t in default["dynamic_templates"]] == ["strings_as_keywords"]
    typed = index_template(OpenSearchSettings(attributes_mapping="fields"))["template"]
    mappings = typed["mappings"]
    assert mappings["properties"]["attributes"] == {"type": "object", "dynamic": True}
    rules = {name: rule for t in mappings["dynamic_templates"] for name, rule in t.items()}
    assert rules["attributes_long"]["mapping"] == {"type": "long", "ignore_malformed": True}
    assert rules["attributes_date"]["mapping"]["type"] == "keyword"
    # The attribute rules come first: the first matching dynamic template wins.
    assert next(iter(mappings["dynamic_templates"][-1])) == "strings_as_keywords"
    assert mappings["properties"]["kubernetes"]["properties"]["pod"]["properties"][
        "labels"] == {"type": "flat_object"}
