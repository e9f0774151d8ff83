#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI spec with schemathesis: starts `pixmill
# standalone` on a free loopback port over a temporary data dir, mints an admin token with
# `pixmill token`, and runs every schemathesis check (no 5xx, statuses, headers and bodies as
# the spec says, invalid input refused, valid input accepted) for a bounded time. Exits
# non-zero on any failure. Schemathesis comes from PyPI into $PIXMILL_VENV (default
# $HOME/.cache/pixmill/venv); settings in scripts/api-fuzz/schemathesis.toml.
#
#   scripts/api-fuzz.sh              # 25 examples per operation, at most 240 s
#   API_FUZZ_EXAMPLES=200 scripts/api-fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pixmill/target}"
venv="${PIXMILL_VENV:-$HOME/.cache/pixmill/venv}"
examples="${API_FUZZ_EXAMPLES:-25}"
budget="${API_FUZZ_SECONDS:-240}"
schemathesis_spec="schemathesis>=4,<5"

if [[ ! -x "$venv/bin/schemathesis" ]]; then
    echo "== installing $schemathesis_spec into $venv"
    [[ -x "$venv/bin/python" ]] || timeout 120 python3 -m venv "$venv"
    timeout 600 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$schemathesis_spec"
fi

echo "== building pixmill"
cargo build --locked --quiet --bin pixmill
pixmill="$CARGO_TARGET_DIR/debug/pixmill"

work="$(mktemp -d)"
server_pid=""
stop() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop EXIT

# Port 0: the kernel picks a free port, and the ready line of the JSON log names it.
PIXMILL_LOG__FORMAT=json RUST_LOG=info "$pixmill" standalone --addr 127.0.0.1:0 \
    --data-dir "$work/data" 2>"$work/server.log" &
server_pid=$!
base=""
for _ in $(seq 1 300); do
    base="$(sed -n 's/.*"message":"standalone pixmill is ready".*"url":"\([^"]*\)".*/\1/p' \
        "$work/server.log" | head -n 1)"
    [[ -n "$base" ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$base" ]] || { echo "pixmill did not become ready" >&2; cat "$work/server.log" >&2; exit 1; }
echo "== pixmill standalone at $base (pid $server_pid)"

token="$("$pixmill" token --sub api-fuzz --role pixmill-admin --ttl 1h --data-dir "$work/data")"

# One processed image with a variant, for the read operations to find.
upload="$(curl -sS --max-time 30 -X POST "$base/v1/images" -H "Authorization: Bearer $token" \
    -F file=@tests/fixtures/corpus/rocket.jpg -F variants=thumbnail)"
image_id="$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$upload")"
[[ -n "$image_id" ]] || { echo "the seed upload failed: $upload" >&2; exit 1; }
for _ in $(seq 1 600); do
    state="$(curl -sS --max-time 5 "$base/v1/images/$image_id" -H "Authorization: Bearer $token")"
    grep -q '"status":"COMPLETED"' <<<"$state" && break
    grep -q '"status":"FAILED"' <<<"$state" && { echo "the seed image failed: $state" >&2; exit 1; }
    sleep 0.1
done
grep -q '"status":"COMPLETED"' <<<"$state" || { echo "the seed image never completed" >&2; exit 1; }
export PIXMILL_FUZZ_IMAGE_ID="$image_id"

echo "== schemathesis: $examples examples per operation, at most $budget s"
status=0
(cd "$work" && timeout "$budget" "$venv/bin/schemathesis" --no-color \
    --config-file "$OLDPWD/scripts/api-fuzz/schemathesis.toml" \
    run "$base/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks all \
    --max-examples "$examples" \
    --workers 2 \
    --request-timeout 30 \
    --suppress-health-check too_slow) || status=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "pixmill died during the run" >&2
    status=1
elif grep -q '"level":"ERROR"' "$work/server.log"; then
    echo "pixmill logged errors during the run:" >&2
    grep '"level":"ERROR"' "$work/server.log" | head -n 20 >&2
    status=1
fi
if [[ "$status" == 124 ]]; then
    echo "schemathesis did not finish within $budget s" >&2
fi
exit "$status"
