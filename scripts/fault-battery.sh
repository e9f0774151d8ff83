#!/usr/bin/env bash
# The fault battery: real `pixmill gateway` and `pixmill worker` processes on a PostgreSQL
# cluster, a RabbitMQ node and a moto S3 server of its own (Redis on 6379 under a key prefix
# of its own), put through crashes, restarts, outages, poison and duplicates. Each scenario
# prints one line
#
#   scenario=<name> completed=<n>/<n> lost=0 duplicated=0 corrupt=0 ...
#
# and the script exits non-zero when any count is off.
#
#   scripts/fault-battery.sh                        every scenario
#   scripts/fault-battery.sh --only baseline poison some of them
#   scripts/fault-battery.sh --faulty publish_before_commit
#                                                   every scenario with a known bug
#                                                   switched on: must fail
#
# The full run ends with scenarios that switch a known bug on (`faulty_*`); each must be
# caught (lost > 0) and reports `expected=fail got=fail`; one that passes fails the run.
#
# The binary is built with `--features failpoints` into its own target folder
# ($CARGO_TARGET_DIR/failpoints), so no fail point ever reaches the suite's or a release
# binary. Needs PostgreSQL's and RabbitMQ's server packages and the venv with moto that
# scripts/test-services.sh installs; a missing one fails the run, loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pixmill/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
venv="${PIXMILL_STATE_DIR:-$HOME/.cache/pixmill}/venv"
failpoints_target="$CARGO_TARGET_DIR/failpoints"

redis_answers() {
    [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]
}

if [ ! -x "$venv/bin/moto_server" ] || ! redis_answers; then
    # test-services.sh owns moto's installation and starting (or installing) Redis, which
    # the battery shares under a key prefix of its own; bring the services up once.
    bash scripts/test-services.sh true
fi
if ! redis_answers; then
    echo "fault-battery: Redis does not answer on 127.0.0.1:6379 (see /var/log/redis/ci.log)" >&2
    exit 1
fi

if [ ! -d "$failpoints_target" ] && [ -d "$CARGO_TARGET_DIR/debug" ]; then
    # Seeding from the suite's build directory spares a cold build of every dependency:
    # only the pixmill crates are rebuilt with the feature.
    mkdir -p "$failpoints_target"
    cp -a "$CARGO_TARGET_DIR/debug" "$failpoints_target/debug"
fi
echo "== building pixmill with --features failpoints"
cargo build --locked --features failpoints --bin pixmill --target-dir "$failpoints_target"

echo "== fault battery"
exec "$venv/bin/python" scripts/battery --binary "$failpoints_target/debug/pixmill" "$@"
