"""Importing logferry's OpenSearch Dashboards saved objects (``dashboards/logferry.ndjson``).

The file holds one saved object a line: the ``logferry-logs-*`` index pattern, the "All logs"
search, two visualizations and the "logferry: Logs overview" dashboard, each with a stable
id, so importing again with ``overwrite=true`` updates them in place.

Uses only the standard library (``urllib``): the import is a single multipart POST.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from logferry.errors import LogferryError

IMPORT_PATH = "/api/saved_objects/_import?overwrite=true"
DEFAULT_FILE = Path("dashboards/logferry.ndjson")


class DashboardsError(LogferryError):
    """The saved objects file is unreadable, or OpenSearch Dashboards refused the import."""


class DashboardsUnavailableError(DashboardsError):
    """OpenSearch Dashboards could not be reached or answered with an HTTP error."""


class DashboardsImportError(DashboardsError):
    """Dashboards answered, but reported saved objects it could not import."""


def load_saved_objects(path: Path) -> list[dict[str, Any]]:
    """Parse an NDJSON saved-objects file; every non-blank line must be a JSON object."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DashboardsError(f"cannot read {path}: {exc.strerror}") from exc
    objects: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DashboardsError(f"{path}:{number}: not valid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict) or "id" not in obj or "type" not in obj:
            raise DashboardsError(f"{path}:{number}: not a saved object (needs id and type)")
        objects.append(obj)
    if not objects:
        raise DashboardsError(f"{path}: no saved objects")
    return objects


def _multipart(filename: str, payload: bytes) -> tuple[bytes, str]:
    boundary = f"logferry-{secrets.token_hex(16)}"
    head = (f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: application/ndjson\r\n\r\n").encode()
    body = head + payload + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _ssl_context(url: str, verify: bool, ca_file: Path | None) -> ssl.SSLContext | None:
    if not url.startswith("https://"):
        return None
    try:
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise DashboardsError(f"cannot load CA file {ca_file}: {exc}") from exc
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _describe_errors(errors: list[Any]) -> str:
    parts = []
    for err in errors[:5]:
        if not isinstance(err, dict):
            parts.append(_one_line(str(err), 80))
            continue
        detail = err.get("error") or {}
        reason = detail.get("type", "error") if isinstance(detail, dict) else str(detail)
        if isinstance(detail, dict) and detail.get("message"):
            reason += f" ({detail['message']})"
        elif isinstance(detail, dict) and detail.get("references"):
            missing = ", ".join(f"{r.get('type')}/{r.get('id')}" for r in detail["references"])
            reason += f" (missing {missing})"
        parts.append(f"{err.get('type')}/{err.get('id')}: {reason}")
    more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
    return _one_line("; ".join(parts) + more)


def import_saved_objects(url: str, path: Path = DEFAULT_FILE, *, username: str | None = None,
                         password: str | None = None, verify: bool = True,
                         ca_file: Path | None = None,
                         timeout_s: float = 30.0) -> dict[str, Any]:
    """POST ``path`` to ``<url>/api/saved_objects/_import?overwrite=true``.

    Returns the parsed response (``success``, ``successCount``, ...). Raises
    :class:`DashboardsUnavailableError` when Dashboards cannot be reached or answers with an
    HTTP error, :class:`DashboardsImportError` when it lists objects it did not import.
    """
    if not url.startswith(("http://", "https://")):
        raise DashboardsError(f"Dashboards URL {url!r} must start with http:// or https://")
    load_saved_objects(path)  # refuse to send a broken file
    payload = path.read_bytes()
    body, content_type = _multipart(path.name, payload)
    endpoint = url.rstrip("/") + IMPORT_PATH
    headers = {"osd-xsrf": "true", "Content-Type": content_type, "Accept": "application/json"}
    if username:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
    context = _ssl_context(url, verify, ca_file)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        try:
            parsed = json.loads(detail)
            if isinstance(parsed, dict):
                detail = str(parsed.get("message") or parsed.get("error") or detail)
        except json.JSONDecodeError:
            pass
        raise DashboardsUnavailableError(
            f"OpenSearch Dashboards at {url} answered HTTP {exc.code}: "
            f"{_one_line(detail) or exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DashboardsUnavailableError(
            f"cannot reach OpenSearch Dashboards at {url}: {_one_line(str(reason))}") from exc
    try:
        result = json.loads(raw)
    except json.JSONDecodeError as exc:
        text = _one_line(raw.decode("utf-8", "replace"))
        raise DashboardsUnavailableError(
            f"OpenSearch Dashboards at {url} did not answer JSON: {text}") from exc
    if not isinstance(result, dict):
        raise DashboardsUnavailableError(f"OpenSearch Dashboards at {url} answered {result!r}")
    errors = result.get("errors") or []
    if errors or result.get("success") is False:
        raise DashboardsImportError(
            f"{len(errors)} saved object(s) from {path} failed to import into {url}: "
            f"{_describe_errors(errors) if errors else 'success is false'}")
    return result
