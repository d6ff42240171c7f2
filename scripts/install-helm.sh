#!/usr/bin/env bash
# Install the chart tooling into .tools/ from source, with pinned versions, from the package
# registries only (the Go module proxy and PyPI); nothing is installed by hand.
#
#   .tools/bin/helm          helm.sh/helm/v3/cmd/helm           (go install, pinned)
#   .tools/bin/kubeconform   github.com/yannh/kubeconform       (go install, pinned)
#   .tools/bin/k8svalidate   tools/k8svalidate (this repo): strict decode into k8s.io/api types
#   .tools/k8s-schemas/      Kubernetes JSON schemas (strict) for kubeconform, taken from the
#                            kubernetes-validate wheel on PyPI (hash-pinned) and made standalone
#                            by scripts/k8s_schemas.py, since kubeconform cannot download them
#
# Idempotent: each artefact carries a stamp of what built it and is rebuilt only when that
# changes. Go's module and build caches (GOMODCACHE, GOCACHE) are reused between runs.
# First run here (2 cores): helm ~3 min, kubeconform ~1.5 min, k8svalidate ~1 min.
set -euo pipefail

HELM_VERSION=v3.22.0
# The Kubernetes minor of the client-go that helm $HELM_VERSION builds with (its go.mod:
# k8s.io/client-go v0.37.x): helm's Makefile passes it so that `helm template` and `helm lint`
# assume that cluster version; without it they assume 1.20.
HELM_K8S_MINOR=37
KUBECONFORM_VERSION=v0.7.0
# The wheel and its sha256 are pinned in tools/k8s-schemas.requirements.txt.
K8S_SCHEMA_VERSIONS="v1.25.0 v1.37.0"   # oldest supported (Chart.yaml kubeVersion) and newest

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${LOGFERRY_TOOLS_DIR:-$ROOT/.tools}"
BIN="$TOOLS/bin"
mkdir -p "$BIN" "$TOOLS/dl"

log() { printf 'install-helm: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

GO="$(command -v go || true)"
[ -n "$GO" ] || { [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; }
[ -n "$GO" ] || die "the Go toolchain (go) is needed to build helm and kubeconform; install Go 1.26+"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)" || die "python3 is needed"
PIP=("$PY" -m pip)

stamp_ok() { [ -x "$1" ] && [ -f "$1.stamp" ] && [ "$(cat "$1.stamp")" = "$2" ]; }
timed() { local t0=$SECONDS; "$@"; log "  done in $((SECONDS - t0)) s"; }

# -- helm --------------------------------------------------------------------------------------
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/chartutil pkg/lint/rules; do
    HELM_LDFLAGS+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1"
    HELM_LDFLAGS+=" -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$HELM_K8S_MINOR"
done
stamp="helm $HELM_VERSION $("$GO" env GOVERSION) $HELM_LDFLAGS"
if stamp_ok "$BIN/helm" "$stamp"; then
    log "helm $HELM_VERSION already in $BIN"
else
    log "building helm $HELM_VERSION (go install; a few minutes on 2 cores)"
    # helm's own Makefile sets these through ldflags; go install must do the same.
    timed env GOBIN="$BIN" CGO_ENABLED=0 "$GO" install -trimpath -ldflags "$HELM_LDFLAGS" \
        "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    echo "$stamp" > "$BIN/helm.stamp"
fi

# -- kubeconform -------------------------------------------------------------------------------
stamp="kubeconform $KUBECONFORM_VERSION $("$GO" env GOVERSION)"
if stamp_ok "$BIN/kubeconform" "$stamp"; then
    log "kubeconform $KUBECONFORM_VERSION already in $BIN"
else
    log "building kubeconform $KUBECONFORM_VERSION"
    timed env GOBIN="$BIN" CGO_ENABLED=0 "$GO" install -trimpath -ldflags "-s -w" \
        "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
    echo "$stamp" > "$BIN/kubeconform.stamp"
fi

# -- k8svalidate (this repo) -------------------------------------------------------------------
src_hash="$(cd "$ROOT/tools/k8svalidate" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)"
stamp="k8svalidate $src_hash $("$GO" env GOVERSION)"
if stamp_ok "$BIN/k8svalidate" "$stamp"; then
    log "k8svalidate up to date"
else
    log "building k8svalidate (tools/k8svalidate)"
    (cd "$ROOT/tools/k8svalidate" && timed "$GO" build -trimpath -mod=readonly \
        -o "$BIN/k8svalidate" .)
    echo "$stamp" > "$BIN/k8svalidate.stamp"
fi

# -- Kubernetes JSON schemas for kubeconform --------------------------------------------------
req="$ROOT/tools/k8s-schemas.requirements.txt"
stamp="$(cat "$req" "$ROOT/scripts/k8s_schemas.py" | sha256sum | cut -c1-16) $K8S_SCHEMA_VERSIONS"
schemas="$TOOLS/k8s-schemas"
if [ -f "$schemas/.stamp" ] && [ "$(cat "$schemas/.stamp")" = "$stamp" ]; then
    log "Kubernetes schemas ($K8S_SCHEMA_VERSIONS) up to date"
else
    log "fetching the kubernetes-validate wheel (PyPI, hash-checked) for its Kubernetes schemas"
    rm -rf "$TOOLS/dl/k8s-schemas" "$schemas"
    "${PIP[@]}" download --quiet --no-deps --only-binary=:all: --require-hashes \
        -r "$req" -d "$TOOLS/dl/k8s-schemas"
    wheel="$(ls "$TOOLS"/dl/k8s-schemas/kubernetes_validate-*.whl)"
    # shellcheck disable=SC2086
    "$PY" "$ROOT/scripts/k8s_schemas.py" "$wheel" "$schemas" $K8S_SCHEMA_VERSIONS
    echo "$stamp" > "$schemas/.stamp"
fi

"$BIN/helm" version --short >/dev/null || die "$BIN/helm does not run"
"$BIN/kubeconform" -h >/dev/null 2>&1 || true
log "ready: $("$BIN/helm" version --short), kubeconform $KUBECONFORM_VERSION, k8svalidate, schemas $K8S_SCHEMA_VERSIONS"
