#!/usr/bin/env bash
# Fuzzes pixmill's format sniffing and header parsing (the `probe` target in fuzz/) for a
# bounded time, on one core. A crash, hang or runaway allocation is copied into
# actors/tests/fuzz_regressions/, where `cargo test -p pixmill-actors` replays it from then
# on, and the script fails.
#
#   FUZZ_SECONDS   how long to fuzz (default 60)
#   FUZZ_CPU       the core to run on with taskset (default 1; empty: no pinning)
#   FUZZ_HOME      corpus and tool cache (default ~/.cache/pixmill/fuzz)
#   CARGO_TARGET_DIR  where the fuzz build goes (default $FUZZ_HOME/target)
#
# cargo-fuzz needs nightly-only compiler flags (-Zsanitizer=address); RUSTC_BOOTSTRAP=1
# lets the stable toolchain accept them. That is for this tool build only, never the product.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}
cpu=${FUZZ_CPU-1}
home=${FUZZ_HOME:-$HOME/.cache/pixmill/fuzz}
regressions=$root/actors/tests/fuzz_regressions
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$home/target}
export RUSTC_BOOTSTRAP=1
# One compiler job: the machine is shared.
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
export PATH=$home/bin:$PATH

pin=()
if [[ -n $cpu ]] && command -v taskset >/dev/null; then
    pin=(taskset -c "$cpu")
fi

if ! command -v cargo-fuzz >/dev/null; then
    echo "fuzz: installing cargo-fuzz into $home"
    "${pin[@]}" cargo install cargo-fuzz --locked --root "$home"
fi

# The corpus grows across runs; it is seeded every time, so new fixtures join it.
corpus=$home/corpus/probe
artifacts=$(mktemp -d)
trap 'rm -rf "$artifacts"' EXIT
mkdir -p "$corpus"
for seed in "$root"/tests/fixtures/cases/* "$root"/tests/fixtures/corpus/* "$regressions"/*; do
    # Large photos only slow libFuzzer down; the header is what is fuzzed.
    if [[ -f $seed && $(stat -c %s "$seed") -le 65536 && $seed != *.md && $seed != *.tsv ]]; then
        cp "$seed" "$corpus/"
    fi
done

cd "$root"
"${pin[@]}" cargo fuzz build probe
echo "fuzz: probe for ${seconds}s on cpu ${cpu:-any}, corpus $corpus"
status=0
"${pin[@]}" cargo fuzz run probe "$corpus" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 || status=$?

found=("$artifacts"/*)
if [[ -e ${found[0]} ]]; then
    cp "${found[@]}" "$regressions/"
    echo "fuzz: FAILED; kept in actors/tests/fuzz_regressions/:"
    for file in "${found[@]}"; do echo "  $(basename "$file")"; done
    exit 1
fi
if [[ $status -ne 0 ]]; then
    echo "fuzz: cargo fuzz exited with $status without an artifact" >&2
    exit "$status"
fi
echo "fuzz: no crash in ${seconds}s"
