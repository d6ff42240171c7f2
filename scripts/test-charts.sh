#!/usr/bin/env bash
# Chart tests: install the pinned tools into .tools/ (helm, kubeconform, k8svalidate and the
# Kubernetes schemas; idempotent), then lint, render and validate both charts.
# Usage: scripts/test-charts.sh [pytest args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install-helm.sh
exec .venv/bin/pytest tests/charts -q "$@"
