#!/usr/bin/env bash
# Brings up the services pixmill's integration tests talk to, all on loopback:
# PostgreSQL, Redis and RabbitMQ (started if down, installed from Debian's packages if
# missing) and an S3 server (moto, from PyPI, in a venv outside the clone).
#
#   source scripts/test-services.sh        exports PIXMILL_TEST_* into this shell; the S3
#                                          server keeps running (pixmill_test_services_stop
#                                          ends it)
#   scripts/test-services.sh CMD [ARGS]    runs CMD with them and an S3 server of its own,
#                                          stopped when CMD ends; exits with CMD's status
#   scripts/test-services.sh               prints the export lines, for eval
#
# Idempotent (running services and an S3 server started earlier are reused), quiet on
# success, loud and non-zero on failure, and every wait is bounded.
#
# Exports: PIXMILL_TEST_POSTGRES_URL, PIXMILL_TEST_REDIS_URL, PIXMILL_TEST_AMQP_URL,
# PIXMILL_TEST_S3_URL, PIXMILL_TEST_S3_ACCESS_KEY, PIXMILL_TEST_S3_SECRET_KEY.

_pm_state_dir="${PIXMILL_STATE_DIR:-$HOME/.cache/pixmill}"
_pm_venv="$_pm_state_dir/venv"
_pm_moto_pid_file="$_pm_state_dir/moto.pid"
_pm_moto_port_file="$_pm_state_dir/moto.port"
_pm_moto_log="$_pm_state_dir/moto.log"
_pm_moto_spec='moto[server]>=5,<6'
_pm_moto_pid=""

_pm_fail() {
    echo "test-services: $*" >&2
    return 1
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
_pm_port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Waits up to $2 seconds for "$1" (a command) to succeed.
_pm_wait_for() {
    local check="$1" seconds="$2" i
    for ((i = 0; i < seconds * 4; i++)); do
        eval "$check" && return 0
        sleep 0.25
    done
    return 1
}

_pm_apt_updated=""
_pm_apt_install() {
    if [ -z "$_pm_apt_updated" ]; then
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq >/dev/null ||
            _pm_fail "apt-get update failed" || return 1
        _pm_apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "$@" >/dev/null ||
        _pm_fail "apt-get install $* failed"
}

# Installs the Debian packages of whichever server is missing, in one apt-get call.
_pm_install_missing() {
    local missing=()
    command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] || missing+=(postgresql)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
    [ ${#missing[@]} -eq 0 ] || _pm_apt_install "${missing[@]}"
}

_pm_postgres() {
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
    # shellcheck disable=SC2046 # one cluster version per machine, as the command expects
    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start >/dev/null 2>&1
    _pm_wait_for "pg_isready -q -h 127.0.0.1 -p 5432" 60 ||
        _pm_fail "PostgreSQL did not answer on 127.0.0.1:5432 within 60 s"
}

_pm_redis() {
    [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ] && return 0
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null ||
        _pm_fail "redis-server did not start (see /var/log/redis/ci.log)" || return 1
    _pm_wait_for '[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]' 30 ||
        _pm_fail "Redis did not answer on 127.0.0.1:6379 within 30 s"
}

_pm_rabbitmq() {
    _pm_port_open 5672 && return 0
    rabbitmq-server -detached >/dev/null 2>&1
    # await_startup also waits for the node to boot; the port check covers brokers whose
    # CLI cannot reach the node (other cookie).
    timeout 120 rabbitmqctl await_startup >/dev/null 2>&1
    _pm_wait_for "_pm_port_open 5672" 30 ||
        _pm_fail "RabbitMQ did not answer on 127.0.0.1:5672 within 150 s"
}

_pm_moto_install() {
    [ -x "$_pm_venv/bin/moto_server" ] && return 0
    mkdir -p "$_pm_state_dir"
    [ -x "$_pm_venv/bin/pip" ] || timeout 120 python3 -m venv "$_pm_venv" ||
        _pm_fail "could not create the venv at $_pm_venv" || return 1
    timeout 600 "$_pm_venv/bin/pip" install --quiet "$_pm_moto_spec" >"$_pm_state_dir/pip.log" 2>&1 ||
        { cat "$_pm_state_dir/pip.log" >&2; _pm_fail "pip install $_pm_moto_spec failed"; }
}

# A free port on loopback, chosen by the kernel.
_pm_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_pm_moto_answers() {
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$1/"
}

# Starts a moto on a free port and waits until it answers; sets _pm_moto_port and
# _pm_moto_pid. Records it in the state dir only when $1 is "shared".
_pm_moto_start() {
    local port pid log="$_pm_moto_log"
    _pm_moto_install || return 1
    port="$(_pm_free_port)" || _pm_fail "could not find a free port" || return 1
    [ "$1" = shared ] || log="$_pm_state_dir/moto.$port.log"
    nohup "$_pm_venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    pid=$!
    if ! _pm_wait_for "_pm_moto_answers $port" 60; then
        tail -n 20 "$log" >&2
        kill "$pid" 2>/dev/null
        _pm_fail "moto did not answer on 127.0.0.1:$port within 60 s"
        return 1
    fi
    if [ "$1" = shared ]; then
        echo "$pid" >"$_pm_moto_pid_file"
        echo "$port" >"$_pm_moto_port_file"
    else
        rm -f "$log"
    fi
    _pm_moto_pid="$pid"
    _pm_moto_port="$port"
}

# For a sourcing shell: reuses a moto started earlier (its PID alive and its port
# answering), else starts one and records it, so later shells reuse it too.
_pm_moto_shared() {
    local pid port
    if [ -f "$_pm_moto_pid_file" ] && [ -f "$_pm_moto_port_file" ]; then
        pid="$(cat "$_pm_moto_pid_file")"
        port="$(cat "$_pm_moto_port_file")"
        if _pm_is_moto "$pid" && _pm_moto_answers "$port"; then
            _pm_moto_port="$port"
            return 0
        fi
    fi
    _pm_moto_start shared
}

# Whether PID $1 is a moto server (a stale PID file may name a reused PID).
_pm_is_moto() {
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q moto_server
}

# Stops the moto recorded in the PID file (started by this script, here or earlier).
pixmill_test_services_stop() {
    local pid
    [ -f "$_pm_moto_pid_file" ] || return 0
    pid="$(cat "$_pm_moto_pid_file")"
    _pm_is_moto "$pid" && kill "$pid" 2>/dev/null
    rm -f "$_pm_moto_pid_file" "$_pm_moto_port_file"
}

# $1: "shared" (a sourcing shell: reuse or record a long-lived moto) or "private" (a moto
# of this run's own, stopped when the run ends, so concurrent runs never stop each other's).
pixmill_test_services_up() {
    _pm_install_missing || return 1
    _pm_postgres || return 1
    _pm_redis || return 1
    _pm_rabbitmq || return 1
    if [ "${1:-shared}" = shared ]; then
        _pm_moto_shared || return 1
    else
        _pm_moto_start private || return 1
    fi

    export PIXMILL_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/test"
    export PIXMILL_TEST_REDIS_URL="redis://127.0.0.1:6379"
    export PIXMILL_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
    export PIXMILL_TEST_S3_URL="http://127.0.0.1:$_pm_moto_port"
    export PIXMILL_TEST_S3_ACCESS_KEY="testing"
    export PIXMILL_TEST_S3_SECRET_KEY="testing"
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    # Sourced: export into the caller's shell and leave its options alone.
    pixmill_test_services_up
    return $?
fi

if [ $# -eq 0 ]; then
    pixmill_test_services_up shared || exit 1
    for var in PIXMILL_TEST_POSTGRES_URL PIXMILL_TEST_REDIS_URL PIXMILL_TEST_AMQP_URL \
        PIXMILL_TEST_S3_URL PIXMILL_TEST_S3_ACCESS_KEY PIXMILL_TEST_S3_SECRET_KEY; do
        printf 'export %s=%q\n' "$var" "${!var}"
    done
    exit 0
fi
pixmill_test_services_up private || exit 1
# Not exec: the trap must outlive the command to stop this run's own moto.
trap 'kill "$_pm_moto_pid" 2>/dev/null' EXIT
"$@"
