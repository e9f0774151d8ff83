#!/usr/bin/env bash
# The whole test suite, from a fresh clone: brings up the services the tests need
# (PostgreSQL, Redis, RabbitMQ, an S3 server), runs every Rust test against them, checks
# the deployment files, the kernel's instruction counts, a generated client and the spec
# (schemathesis), and runs the fault battery. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are kept outside the clone, so a new clone does not rebuild ~400 crates.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pixmill/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== deployment files (docker-compose.yml, Dockerfile)"
bash scripts/check-deploy.sh

echo "== Rust tests (unit and integration, against the real services)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
bash scripts/test-services.sh cargo test --workspace --locked 2>&1 | tee "$log"

echo "== the image kernel with libjpeg-turbo (the turbo feature: what the Docker image and benchmarks run)"
bash scripts/build-deps.sh
cargo test -p pixmill-actors --locked --features turbo 2>&1 | tee -a "$log"

# Instruction counts, not times: a regression in the kernel fails here on any machine load.
echo "== the kernel's instruction counts against their recorded ratios (callgrind, benches/regression.sh)"
bash benches/regression.sh

echo "== a client generated from openapi/ (upload, poll, download through it)"
bash scripts/client-test.sh

echo "== the API fuzzed from its own spec (schemathesis: no 5xx, every answer as documented)"
bash scripts/api-fuzz.sh

# Its last scenario runs a known-wrong build and passes only if the battery catches it
# (`expected=fail got=fail`), so a battery that stopped detecting loss fails the suite.
echo "== the fault battery (crashes, restarts, outages, poison, duplicates, a known-wrong build; one line per scenario)"
bash scripts/fault-battery.sh

# One closing line for the whole suite: cargo prints a summary per test binary, the last of
# them for doc-tests (usually 0), which would otherwise read as the suite's total.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
