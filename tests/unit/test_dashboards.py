"""The Dashboards saved objects file and its importer (against a real loopback HTTP server)."""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from logferry import opensearch
from logferry._cli_dashboards import dashboards_group
from logferry.dashboards import (
    DashboardsError,
    DashboardsImportError,
    DashboardsUnavailableError,
    import_saved_objects,
    load_saved_objects,
)
from logferry.errors import LogferryError

ROOT = Path(__file__).resolve().parents[2]
NDJSON = ROOT / "dashboards" / "logferry.ndjson"
CHART_COPY = ROOT / "charts" / "logferry-indexer" / "files" / "logferry.ndjson"


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in NDJSON.read_text().splitlines()]


def by_type(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["type"] == kind]


def search_source(obj: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    return result


# -- the file -----------------------------------------------------------------------------------

def test_every_line_is_a_saved_object() -> None:
    lines = NDJSON.read_text().split("\n")
    assert lines[-1] == "", "the file ends with a newline"
    for number, line in enumerate(lines[:-1], 1):
        obj = json.loads(line)
        assert isinstance(obj, dict), number
        assert {"id", "type", "attributes", "references"} <= obj.keys(), number
        assert obj["attributes"]["title"], number


def test_ids_are_unique_and_stable(objects: list[dict[str, Any]]) -> None:
    ids = [(o["type"], o["id"]) for o in objects]
    assert len(ids) == len(set(ids))
    assert len({o["id"] for o in objects}) == len(objects)
    assert all(o["id"].startswith("logferry-") for o in objects)


def test_expected_objects(objects: list[dict[str, Any]]) -> None:
    assert sorted(o["type"] for o in objects) == [
        "dashboard", "index-pattern", "search", "visualization", "visualization"]
    titles = {o["attributes"]["title"] for o in objects}
    assert {"All logs", "Log volume by level", "Top namespaces by errors"} <= titles


def test_every_reference_resolves_to_an_object_of_that_type(
        objects: list[dict[str, Any]]) -> None:
    present = {(o["type"], o["id"]) for o in objects}
    for obj in objects:
        names = [r["name"] for r in obj["references"]]
        assert len(names) == len(set(names)), obj["id"]
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in present, (obj["id"], ref)


def test_index_pattern_time_field(objects: list[dict[str, Any]]) -> None:
    (pattern,) = by_type(objects, "index-pattern")
    assert pattern["attributes"]["timeFieldName"] == opensearch.F_TIMESTAMP == "@timestamp"
    # The indexer's daily indices are <index_prefix>-YYYY.MM.DD with the default prefix.
    assert pattern["attributes"]["title"] == "logferry-logs-*"


def test_search_source_index_refs_are_declared(objects: list[dict[str, Any]]) -> None:
    for obj in by_type(objects, "search") + by_type(objects, "visualization"):
        source = search_source(obj)
        ref_name = source["indexRefName"]
        (ref,) = [r for r in obj["references"] if r["name"] == ref_name]
        assert ref["type"] == "index-pattern"


def test_all_logs_search(objects: list[dict[str, Any]]) -> None:
    (search,) = by_type(objects, "search")
    attrs = search["attributes"]
    assert attrs["title"] == "All logs"
    assert attrs["columns"] == [opensearch.F_NAMESPACE, opensearch.F_POD,
                                opensearch.F_CONTAINER, opensearch.F_LEVEL,
                                opensearch.F_MESSAGE]
    assert attrs["sort"] == [["@timestamp", "desc"]]


def test_visualizations(objects: list[dict[str, Any]]) -> None:
    vis = {o["attributes"]["title"]: o for o in by_type(objects, "visualization")}
    volume = json.loads(vis["Log volume by level"]["attributes"]["visState"])
    aggs = {a["type"]: a for a in volume["aggs"]}
    assert aggs["date_histogram"]["params"]["field"] == "@timestamp"
    assert aggs["terms"]["params"]["field"] == opensearch.F_LEVEL
    assert aggs["terms"]["schema"] == "group"  # split series by level

    errors = vis["Top namespaces by errors"]
    state = json.loads(errors["attributes"]["visState"])
    (terms,) = [a for a in state["aggs"] if a["type"] == "terms"]
    assert terms["params"]["field"] == opensearch.F_NAMESPACE
    assert search_source(errors)["query"] == {"query": "log.level:error", "language": "kuery"}


def test_dashboard_panels_resolve(objects: list[dict[str, Any]]) -> None:
    (dashboard,) = by_type(objects, "dashboard")
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    refs = {r["name"]: r for r in dashboard["references"]}
    assert {p["panelRefName"] for p in panels} == set(refs)
    targets = {(r["type"], r["id"]) for r in refs.values()}
    expected = {(o["type"], o["id"]) for o in objects
                if o["type"] in ("search", "visualization")}
    assert targets == expected
    assert len({p["panelIndex"] for p in panels}) == len(panels)


def test_chart_copy_is_identical() -> None:
    assert CHART_COPY.read_bytes() == NDJSON.read_bytes(), (
        "charts/logferry-indexer/files/logferry.ndjson must be a copy of "
        "dashboards/logferry.ndjson: cp dashboards/logferry.ndjson "
        "charts/logferry-indexer/files/")


def test_load_rejects_broken_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"id": "a", "type": "search"}\n{not json\n')
    with pytest.raises(DashboardsError, match=r"bad.ndjson:2: not valid JSON"):
        load_saved_objects(bad)
    with pytest.raises(DashboardsError, match="cannot read"):
        load_saved_objects(tmp_path / "missing.ndjson")


# -- the importer, against a loopback HTTP server ----------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []
    reply: ClassVar[tuple[int, bytes]] = (200, b"{}")

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        # self.headers (an email Message) looks names up case-insensitively, as HTTP does.
        type(self).requests.append({"path": self.path, "headers": self.headers,
                                    "body": body})
        status, payload = type(self).reply
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"requests": [], "reply": (200, b"{}")})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _file_part(request: dict[str, Any]) -> tuple[str | None, bytes]:
    raw = (f"Content-Type: {request['headers']['Content-Type']}\r\n\r\n").encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw + request["body"])
    assert msg.is_multipart()
    (part,) = list(msg.iter_parts())
    assert part.get_param("name", header="content-disposition") == "file"
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return part.get_filename(), payload


def test_import_builds_the_right_request(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.reply = (200, json.dumps({"success": True, "successCount": 5}).encode())
    result = import_saved_objects(url + "/", NDJSON, username="admin", password="s3cret")
    assert result == {"success": True, "successCount": 5}
    (req,) = handler.requests
    assert req["path"] == "/api/saved_objects/_import?overwrite=true"
    assert req["headers"]["osd-xsrf"] == "true"
    assert req["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    assert req["headers"]["Authorization"] == "Basic YWRtaW46czNjcmV0"  # admin:s3cret
    filename, payload = _file_part(req)
    assert filename == "logferry.ndjson"
    assert payload == NDJSON.read_bytes()


def test_import_without_auth_sends_no_authorization(
        server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.reply = (200, b'{"success": true, "successCount": 5}')
    import_saved_objects(url, NDJSON)
    assert "Authorization" not in handler.requests[0]["headers"]


def test_import_errors_list_raises(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.reply = (200, json.dumps({
        "success": False, "successCount": 4,
        "errors": [{"id": "logferry-overview", "type": "dashboard", "title": "x",
                    "error": {"type": "missing_references",
                              "references": [{"type": "search", "id": "nope"}]}}],
    }).encode())
    with pytest.raises(DashboardsImportError) as info:
        import_saved_objects(url, NDJSON)
    message = str(info.value)
    assert "\n" not in message
    assert "dashboard/logferry-overview: missing_references (missing search/nope)" in message
    assert isinstance(info.value, LogferryError)


def test_import_http_error_raises(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.reply = (401, b'{"statusCode":401,"error":"Unauthorized","message":"bad creds"}')
    with pytest.raises(DashboardsUnavailableError, match=r"answered HTTP 401: bad creds$"):
        import_saved_objects(url, NDJSON)


def test_import_connection_refused_raises() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Handler) as httpd:
        port = httpd.server_address[1]  # bound, then closed: nothing listens there
    with pytest.raises(DashboardsUnavailableError,
                       match=r"^cannot reach OpenSearch Dashboards at http://127\.0\.0\.1") as info:
        import_saved_objects(f"http://127.0.0.1:{port}", NDJSON, timeout_s=5)
    assert "\n" not in str(info.value)


def test_cli_import(server: tuple[str, type[_Handler]], tmp_path: Path) -> None:
    url, handler = server
    handler.reply = (200, b'{"success": true, "successCount": 5}')
    secret = tmp_path / "password"
    secret.write_text("pw\n")
    result = CliRunner().invoke(dashboards_group, [
        "import", "--url", url, "--file", str(NDJSON), "--username", "u",
        "--password-file", str(secret)])
    assert result.exit_code == 0, result.output
    assert "imported 5 saved objects" in result.output
    assert handler.requests[0]["headers"]["Authorization"] == "Basic dTpwdw=="  # u:pw
