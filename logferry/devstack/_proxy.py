"""OpenSearch over TLS with basic auth for the secure dev stack: nginx in front of the plain
node, with the dev CA's certificate and the ``logferry`` user's password.

OpenSearch's own security plugin is not used: no release of it matches the pinned OpenSearch
2.19.6 on Maven Central, it ships as a zip of its own dependencies rather than a resolvable
pom, and it would need transport TLS and a security index bootstrap in a second 1 GiB node on
a 2-core machine. To a client the proxy looks the same: https, a certificate to verify, 401 for
a wrong password.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from logferry.devstack._secure import SecureFiles
from logferry.devstack._services import Service
from logferry.devstack._tools import Jdk
from logferry.errors import ToolMissingError

INSTALL_SCRIPT = "scripts/install-nginx.sh"


def find_nginx() -> Path:
    found = shutil.which("nginx")
    if found:
        return Path(found)
    # Debian installs it under /usr/sbin, which is not on a normal user's PATH.
    for candidate in (Path("/usr/sbin/nginx"), Path("/usr/local/sbin/nginx")):
        if candidate.exists():
            return candidate
    raise ToolMissingError(
        "nginx not found; the secure dev stack serves OpenSearch over TLS with basic auth "
        f"through it: install it with `bash {INSTALL_SCRIPT}` (or `apt-get install nginx-light`)")


@dataclass
class TlsProxyService(Service):
    """``ports`` = (https port,); proxies to the OpenSearch HTTP port ``upstream_port``."""

    upstream_port: int = 9200
    secure: SecureFiles | None = None

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def address(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def conf_path(self) -> Path:
        return self.dir / "nginx.conf"

    @property
    def marker(self) -> str:
        # nginx rewrites its process title but keeps its arguments, this path among them.
        return str(self.conf_path)

    def _files(self) -> SecureFiles:
        assert self.secure is not None, "the TLS proxy needs the secure files"
        return self.secure

    def prepare(self, jdk: Jdk) -> list[str]:
        nginx = find_nginx()
        files = self._files()
        files.ensure()
        tmp = self.dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self._config(tmp))
        return [str(nginx), "-p", str(self.dir), "-e", "stderr", "-c", str(self.conf_path)]

    def _config(self, tmp: Path) -> str:
        files = self._files()
        temp_paths = "\n".join(f"    {kind}_temp_path {tmp / kind};"
                               for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # Started by root, nginx would hand requests to workers running as "nobody", which
        # cannot read the htpasswd file in a private state dir (it is read per request).
        user = "user root;\n" if os.geteuid() == 0 else ""
        return f"""# Written by `logferry dev up --secure` at every start; edits are lost.
{user}daemon off;
worker_processes 1;
pid {self.dir / "nginx-master.pid"};
error_log stderr warn;
events {{
    worker_connections 512;
}}
http {{
    access_log {self.dir / "access.log"};
{temp_paths}
    # Bulk requests are as large as the indexer makes them; stream them without buffering.
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    upstream opensearch {{
        server 127.0.0.1:{self.upstream_port};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{self.port} ssl;
        ssl_certificate {files.server_cert};
        ssl_certificate_key {files.server_key};
        ssl_protocols TLSv1.2 TLSv1.3;
        auth_basic "logferry dev OpenSearch";
        auth_basic_user_file {files.htpasswd};
        location / {{
            proxy_pass http://opensearch;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The node behind has no security plugin; the credential stops here.
            proxy_set_header Authorization "";
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
        }}
    }}
}}
"""

    def is_ready(self) -> bool:
        files = self._files()
        if not files.ca_file.exists():
            return False
        token = base64.b64encode(f"{files.username}:{files.opensearch_password()}".encode())
        req = urllib.request.Request(
            f"{self.address}/_cluster/health?wait_for_status=yellow&timeout=2s",
            headers={"Authorization": f"Basic {token.decode()}"})
        ctx = ssl.create_default_context(cafile=str(files.ca_file))
        try:
            with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
                body = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return body.get("status") in ("yellow", "green")
