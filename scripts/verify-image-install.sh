#!/usr/bin/env bash
# Replay the Dockerfile's install steps without Docker (no engine runs on the build machine):
#   stage 1: build logferry's wheel from this checkout, then the wheels of its dependencies;
#   stage 2: a clean virtualenv (no access to the source tree or the dev venv) installs only
#            those wheels with --no-index, then the console script must run.
# Usage: scripts/verify-image-install.sh [WORKDIR]   (default: a temporary directory)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || { echo "verify-image-install: $PY missing (create the dev venv first)" >&2; exit 1; }
WORK="${1:-$(mktemp -d)}"
[ $# -ge 1 ] || trap 'rm -rf "$WORK"' EXIT
WHEELS="$WORK/wheels"
mkdir -p "$WHEELS"
log() { printf 'verify-image-install: %s\n' "$*" >&2; }

# The image's Python is 3.11; so is the dev venv's interpreter, which builds the clean venv.
BASE_PY="$("$PY" -c 'import sys; print(sys._base_executable)')"
"$BASE_PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || { log "the image uses Python 3.11; $BASE_PY is not"; exit 1; }

log "stage 1: pip wheel --no-deps (logferry)"
(cd "$ROOT" && "$PY" -m pip wheel --quiet --no-deps --wheel-dir "$WHEELS" .)
WHEEL="$(ls "$WHEELS"/logferry-*.whl)"
log "stage 1: pip wheel (dependencies of $(basename "$WHEEL"))"
"$PY" -m pip wheel --quiet --wheel-dir "$WHEELS" "$WHEEL"

# What the wheel carries: the three packages, no tests, no dev tooling.
"$PY" - "$WHEEL" <<'PYEOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
tops = {n.split("/")[0] for n in names if not n.startswith("logferry-")}
assert {"logferry", "agent", "indexer"} <= tops, tops
assert not any(n.startswith(("tests/", "benchmarks/", "charts/")) for n in names), tops
# The image's build stage has a C compiler: every C extension must be in the wheel.
for ext in ("agent/stages/_scan", "indexer/stages/_levels", "indexer/stages/_limits",
            "indexer/stages/_timestamps", "indexer/stages/_document"):
    assert any(n.startswith(ext) and n.endswith(".so") for n in names), \
        f"{ext}*.so missing: the C extension was not built"
assert not any(n.endswith(".c") for n in names), "C sources in the wheel"
print(f"verify-image-install: wheel has {len(names)} files, packages {sorted(tops)}",
      file=sys.stderr)
PYEOF

log "stage 2: clean venv, install only the wheels (--no-index)"
"$BASE_PY" -m venv "$WORK/image"
"$WORK/image/bin/python" -m pip install --quiet --no-index --find-links "$WHEELS" logferry

# Run from an unrelated directory with a scrubbed environment, so that nothing of the
# checkout or the dev venv can be imported by accident.
cd "$WORK"
run() { env -i PATH="$WORK/image/bin:/usr/bin:/bin" HOME="$WORK" "$@"; }
log "logferry --help"
run logferry --help >/dev/null
log "logferry agent run --help"
run logferry agent run --help | grep -q -- "--config"
log "logferry indexer run --help"
run logferry indexer run --help | grep -q -- "--config"
run python -c 'import agent.app, indexer.app, logferry.cli, logferry.dashboards'
run python -c 'from agent.stages.native import COMPILED; assert COMPILED, "pure-Python scans"'
run python -c 'from indexer.stages.levels import COMPILED; assert COMPILED, "pure-Python levels"'
origin="$(run python -c 'import logferry; print(logferry.__file__)')"
case "$origin" in
    "$WORK"/image/*) ;;
    *) log "logferry was imported from $origin, not the clean venv"; exit 1 ;;
esac
log "ok: the wheel installs alone and its console script runs ($(run logferry --version))"
