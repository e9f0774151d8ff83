#!/usr/bin/env bash
# Production mode by hand, on this machine: builds `pixmill`, starts a gateway and two
# workers as separate processes against the loopback services of scripts/test-services.sh
# (PostgreSQL, RabbitMQ, the S3 server, Redis), uploads a real photo with a token from
# `pixmill token`, waits for COMPLETED, downloads the result and checks its width.
#
#   scripts/try-production.sh            exits 0 when the photo came back 800 px wide
#
# Not part of the test suite. Everything it creates is its own: a fresh PostgreSQL schema,
# queue name, bucket prefix and Redis key prefix, free loopback ports, a temporary data dir.
# The gateway trusts the local issuer (PIXMILL_AUTH__TRUST_LOCAL_ISSUER_UNSAFE=true), which
# production never does. On exit it stops the processes it started, by PID, then drops its
# schema and deletes its queues and exchange; the logs are printed when something failed.
# Left behind: its buckets on the S3 server and Redis keys, which expire.
set -euo pipefail
cd "$(dirname "$0")/.."

PHOTO=tests/fixtures/corpus/Bridge_by_Sander_Klootwijk.jpg
STEPS='[{"op":"resize","width":800},{"op":"grayscale"}]'
WANT_WIDTH=800
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pixmill/target}"

say() { printf '== %s\n' "$*"; }
fail() {
    printf 'try-production: %s\n' "$*" >&2
    exit 1
}

# A free port on loopback, chosen by the kernel.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to $2 seconds for URL $1 to answer 2xx.
wait_ready() {
    local i
    for ((i = 0; i < $2 * 4; i++)); do
        curl -sf -o /dev/null --max-time 2 "$1" && return 0
        sleep 0.25
    done
    return 1
}

# The width of the JPEG in $1, from its start-of-frame marker (no imaging library needed).
jpeg_width() {
    python3 - "$1" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:2] == b"\xff\xd8", "not a JPEG"
i = 2
while i + 4 <= len(data):
    if data[i] != 0xFF:
        sys.exit("corrupt JPEG marker stream")
    marker = data[i + 1]
    if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
        i += 2
        continue
    (length,) = struct.unpack(">H", data[i + 2:i + 4])
    # SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC): height then width.
    if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
        height, width = struct.unpack(">HH", data[i + 5:i + 9])
        print(width, height)
        sys.exit(0)
    i += 2 + length
sys.exit("no start-of-frame marker")
PY
}

# The field at the path given as arguments (`processed width`) of the JSON on stdin.
json_field() {
    python3 -c 'import json, sys
doc = json.load(sys.stdin)
for key in sys.argv[1:]:
    doc = doc[key]
print(doc)' "$@"
}

say "services (scripts/test-services.sh)"
# shellcheck source=scripts/test-services.sh
source scripts/test-services.sh || fail "the test services did not come up"

say "building pixmill"
cargo build --quiet --bin pixmill
BIN="$CARGO_TARGET_DIR/debug/pixmill"

RUN="try$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
WORK="$(mktemp -d)"
GATEWAY_PORT="$(free_port)"
WORKER_PORTS=("$(free_port)" "$(free_port)")
PIDS=()

export PIXMILL_DATA_DIR="$WORK/data"
export PIXMILL_METADATA__URL="$PIXMILL_TEST_POSTGRES_URL"
export PIXMILL_METADATA__SCHEMA="$RUN"
export PIXMILL_OBJECTS__URL="$PIXMILL_TEST_S3_URL"
export PIXMILL_OBJECTS__ACCESS_KEY="$PIXMILL_TEST_S3_ACCESS_KEY"
export PIXMILL_OBJECTS__SECRET_KEY="$PIXMILL_TEST_S3_SECRET_KEY"
export PIXMILL_OBJECTS__BUCKET_PREFIX="$RUN-"
export PIXMILL_QUEUE__URL="$PIXMILL_TEST_AMQP_URL"
export PIXMILL_QUEUE__NAME="pixmill-$RUN"
export PIXMILL_CACHE__URL="$PIXMILL_TEST_REDIS_URL"
export PIXMILL_CACHE__KEY_PREFIX="pixmill-$RUN:"
export PIXMILL_AUTH__TRUST_LOCAL_ISSUER_UNSAFE=true
export PIXMILL_LOG__FORMAT=json

# Whether process $1 (a child of this script) is still running; an exited child stays a
# zombie until `wait` reaps it, and `kill -0` cannot tell the two apart.
running() {
    local stat
    stat="$(ps -o stat= -p "$1" 2>/dev/null)" && [ "${stat#Z}" = "$stat" ]
}

OK=""
cleanup() {
    local pid i rc
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        i=0
        while running "$pid" && [ "$i" -lt 120 ]; do
            sleep 0.25
            i=$((i + 1))
        done
        if running "$pid"; then
            echo "process $pid did not stop within 30 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        echo "   pid $pid exited with status $rc"
    done
    if [ -z "$OK" ]; then
        for log in "$WORK"/*.log; do
            [ -f "$log" ] && { echo "--- $log (last 30 lines)"; tail -n 30 "$log"; }
        done
    fi
    psql -q "$PIXMILL_TEST_POSTGRES_URL" -c "DROP SCHEMA IF EXISTS $RUN CASCADE" >/dev/null 2>&1 ||
        echo "note: could not drop schema $RUN" >&2
    for queue in "pixmill-$RUN" "pixmill-$RUN.dead"; do
        rabbitmqctl -q delete_queue "$queue" >/dev/null 2>&1 || echo "note: could not delete queue $queue" >&2
    done
    # rabbitmqctl has no delete_exchange; this internal call (RabbitMQ 3.8 to 3.12) does it.
    rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"pixmill-$RUN.dlx\">>), false, <<\"try-production\">>)." \
        >/dev/null 2>&1 || echo "note: could not delete exchange pixmill-$RUN.dlx" >&2
    rm -rf "$WORK"
    [ -n "${_pm_started_moto:-}" ] && pixmill_test_services_stop
    return 0
}
trap cleanup EXIT

say "token for alice (pixmill token, key in $PIXMILL_DATA_DIR)"
TOKEN="$("$BIN" token --sub alice)"

say "starting a gateway on 127.0.0.1:$GATEWAY_PORT and workers (admin ${WORKER_PORTS[*]})"
"$BIN" gateway --addr "127.0.0.1:$GATEWAY_PORT" 2>"$WORK/gateway.log" &
PIDS+=("$!")
for n in 0 1; do
    "$BIN" worker --admin-addr "127.0.0.1:${WORKER_PORTS[$n]}" 2>"$WORK/worker-$((n + 1)).log" &
    PIDS+=("$!")
done
echo "   pids: gateway ${PIDS[0]}, workers ${PIDS[1]} ${PIDS[2]}"
wait_ready "http://127.0.0.1:$GATEWAY_PORT/readyz" 90 || fail "the gateway is not ready"
for port in "${WORKER_PORTS[@]}"; do
    wait_ready "http://127.0.0.1:$port/readyz" 90 || fail "the worker on $port is not ready"
done

BASE="http://127.0.0.1:$GATEWAY_PORT"
say "uploading $PHOTO ($STEPS)"
UPLOAD="$(curl -sS -X POST "$BASE/v1/images" -H "Authorization: Bearer $TOKEN" \
    -F "file=@$PHOTO" -F "steps=$STEPS" -w '\n%{http_code}')"
[ "$(tail -n 1 <<<"$UPLOAD")" = 202 ] || fail "upload answered: $UPLOAD"
ID="$(head -n 1 <<<"$UPLOAD" | json_field id)"
echo "   202, id $ID"

say "waiting for COMPLETED"
STATUS=""
for ((i = 0; i < 240; i++)); do
    DOC="$(curl -sS "$BASE/v1/images/$ID" -H "Authorization: Bearer $TOKEN")"
    STATUS="$(json_field status <<<"$DOC")"
    [ "$STATUS" = COMPLETED ] || [ "$STATUS" = FAILED ] && break
    sleep 0.25
done
[ "$STATUS" = COMPLETED ] || fail "image $ID is $STATUS: $DOC"
echo "   COMPLETED after $(json_field attempts <<<"$DOC") attempt(s):" \
    "$(json_field processed width <<<"$DOC")x$(json_field processed height <<<"$DOC")" \
    "$(json_field processed format <<<"$DOC")"
for n in 1 2; do
    grep -q "\"image_id\":\"$ID\".*job finished\|job finished.*\"image_id\":\"$ID\"" "$WORK/worker-$n.log" &&
        echo "   processed by worker $n (pid ${PIDS[$n]})"
done

say "downloading and checking the result"
curl -sSf "$BASE/v1/images/$ID/processed" -H "Authorization: Bearer $TOKEN" -o "$WORK/result.jpg"
read -r WIDTH HEIGHT < <(jpeg_width "$WORK/result.jpg")
echo "   $(wc -c <"$WORK/result.jpg") bytes, JPEG ${WIDTH}x${HEIGHT} (from its SOF marker)"
[ "$WIDTH" = "$WANT_WIDTH" ] || fail "the result is $WIDTH wide, not $WANT_WIDTH"

OK=1
say "OK: gateway and two workers processed a real photo; stopping them"
