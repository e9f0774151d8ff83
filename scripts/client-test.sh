#!/usr/bin/env bash
# Checks the committed OpenAPI spec from the outside: generates a Python client from
# openapi/openapi.json with openapi-python-client (in the venv under ~/.cache/pixmill),
# starts `pixmill standalone` on a free loopback port with a temporary data directory, and
# runs upload, poll and download through the generated client (tests/client/roundtrip.py).
# The server is stopped by its PID whatever happens; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pixmill/target}"
state_dir="${PIXMILL_STATE_DIR:-$HOME/.cache/pixmill}"
venv="$state_dir/venv"
generator_spec='openapi-python-client>=0.29,<0.30'

fail() {
    echo "client-test: $*" >&2
    exit 1
}

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        # Bounded: a server that ignores SIGTERM for 15 s is killed.
        for _ in $(seq 1 60); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== generator ($generator_spec)"
mkdir -p "$state_dir"
[ -x "$venv/bin/pip" ] || timeout 120 python3 -m venv "$venv" || fail "could not create the venv at $venv"
if ! "$venv/bin/python" -c 'import openapi_python_client' 2>/dev/null; then
    timeout 600 "$venv/bin/pip" install --quiet "$generator_spec" >"$work/pip.log" 2>&1 ||
        { cat "$work/pip.log" >&2; fail "pip install $generator_spec failed"; }
fi

echo "== generate the client from openapi/openapi.json"
# The generator formats its output with ruff, which it installs into the venv's bin.
PATH="$venv/bin:$PATH" timeout 300 "$venv/bin/openapi-python-client" generate \
    --path openapi/openapi.json --meta none --config tests/client/generator.yaml \
    --output-path "$work/pixmill_client" >"$work/generate.log" 2>&1 ||
    { cat "$work/generate.log" >&2; fail "the generator failed on openapi/openapi.json"; }
if grep -q 'Warning(s) encountered' "$work/generate.log"; then
    cat "$work/generate.log" >&2
    fail "the generator skipped parts of openapi/openapi.json"
fi

echo "== build and start pixmill standalone"
timeout 1200 cargo build --locked --quiet --bin pixmill
pixmill="$CARGO_TARGET_DIR/debug/pixmill"
data="$work/data"
mkdir -p "$data/issuer"
# The fixture key, so no RSA key is generated here.
install -m 600 tests/fixtures/issuer/private-key.pem "$data/issuer/private-key.pem"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
PIXMILL_LOG__FORMAT=pretty "$pixmill" standalone --addr "127.0.0.1:$port" --data-dir "$data" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 240); do
    curl -sf -o /dev/null --max-time 2 "$base/healthz" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "pixmill exited during start-up"; }
    sleep 0.25
done
curl -sf -o /dev/null --max-time 2 "$base/healthz" || { cat "$work/server.log" >&2; fail "pixmill did not answer within 60 s"; }
token="$("$pixmill" token --sub client-test --data-dir "$data")"

echo "== upload, poll and download through the generated client"
if ! PYTHONPATH="$work" timeout 300 "$venv/bin/python" tests/client/roundtrip.py \
    --base-url "$base" --token "$token" --image tests/fixtures/corpus/rocket.jpg; then
    tail -n 40 "$work/server.log" >&2
    fail "the generated client's round trip failed"
fi
