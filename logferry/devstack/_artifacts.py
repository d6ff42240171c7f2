"""Fetching the pinned Kafka and OpenSearch jars from Maven Central into a cache directory.

Each service has a pom under ``maven/<name>/pom.xml`` in this package; ``mvn
dependency:copy-dependencies`` resolves it. A fetch is complete only when its marker file holds
the pom's hash, so an interrupted download or an edited pom is fetched again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from logferry.devstack._tools import find_maven
from logferry.errors import DevStackError

_MAVEN_DIR = Path(__file__).parent / "maven"


def cache_root() -> Path:
    env = os.environ.get("LOGFERRY_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "logferry"


def pom_path(name: str) -> Path:
    return _MAVEN_DIR / name / "pom.xml"


def ensure_jars(name: str, echo: bool = True) -> Path:
    """Return the directory holding every jar of service ``name``, fetching it if needed."""
    pom = pom_path(name)
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    target = cache_root() / f"{name}-{digest}"
    marker = target / ".complete"
    lib = target / "lib"
    if marker.exists() and marker.read_text() == digest:
        return lib
    mvn = find_maven()
    if target.exists():
        shutil.rmtree(target)
    lib.mkdir(parents=True)
    if echo:
        print(f"fetching {name} jars from Maven Central into {lib} ...", flush=True)
    cmd = [
        str(mvn), "-B", "-q", "-f", str(pom),
        "dependency:copy-dependencies", f"-DoutputDirectory={lib}",
        "-DincludeScope=runtime",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise DevStackError(
            f"mvn could not fetch the {name} artifacts (exit {proc.returncode}):\n"
            + "\n".join(tail)
        )
    if not any(lib.glob("*.jar")):
        raise DevStackError(f"mvn finished but {lib} holds no jars")
    marker.write_text(digest)
    return lib
