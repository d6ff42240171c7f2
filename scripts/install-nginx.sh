#!/usr/bin/env bash
# Install nginx from Debian's packages for the secure dev stack (`logferry dev up --secure`),
# which puts it in front of OpenSearch to terminate TLS and check basic auth.
#
# Idempotent: does nothing when an nginx binary is already there. The package's own service is
# kept from starting (it would listen on port 80 for nothing): the dev stack runs its own nginx
# process with its own config under the state directory.
set -euo pipefail

log() { printf 'install-nginx: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "nginx is missing and this needs root (or sudo): apt-get install nginx-light"
    SUDO=(sudo)
fi
command -v apt-get >/dev/null 2>&1 || die "no apt-get here; install nginx (with the ssl and auth_basic modules) with your package manager"

# invoke-rc.d asks policy-rc.d whether a package may start its service; 101 means "no". Only a
# policy file we created is removed again.
POLICY=/usr/sbin/policy-rc.d
OURS=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    OURS=1
fi
cleanup() { if [ "$OURS" = 1 ]; then "${SUDO[@]}" rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
log "installing nginx from Debian's packages"
"${SUDO[@]}" apt-get update -qq
# nginx-light (bookworm) is the smallest build that has ssl and auth_basic; newer releases
# dropped it in favour of plain nginx.
if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends nginx-light >/dev/null; then
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends nginx >/dev/null
fi
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || die "apt-get finished but no nginx binary is installed"
log "installed $(/usr/sbin/nginx -v 2>&1)"
