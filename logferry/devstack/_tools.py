"""Locating the JDK and Maven the dev stack runs on, with errors that say what to install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from logferry.errors import ToolMissingError

MIN_JAVA = 17


@dataclass(frozen=True)
class Jdk:
    java: Path
    javac: Path | None
    major: int


def find_jdk() -> Jdk:
    """The JDK from JAVA_HOME if set, else the one on PATH; at least Java 17."""
    home = os.environ.get("JAVA_HOME")
    java = Path(home) / "bin" / "java" if home else _which("java")
    if java is None or not java.exists():
        raise ToolMissingError(
            f"java not found (JAVA_HOME={home or 'unset'}); install a JDK >= {MIN_JAVA}, "
            "e.g. `apt-get install openjdk-17-jdk-headless`"
        )
    out = subprocess.run(
        [str(java), "-version"], capture_output=True, text=True, check=False
    ).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise ToolMissingError(f"cannot read the version of {java}: {out.strip()[:200]}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise ToolMissingError(f"{java} is Java {major}; the dev stack needs Java >= {MIN_JAVA}")
    javac = java.parent / "javac"
    return Jdk(java=java, javac=javac if javac.exists() else None, major=major)


def find_maven() -> Path:
    mvn = _which("mvn")
    if mvn is None:
        raise ToolMissingError(
            "mvn not found; the dev stack fetches Kafka and OpenSearch from Maven Central with it: "
            "install Maven, e.g. `apt-get install maven`"
        )
    return mvn


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None
