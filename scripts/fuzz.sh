#!/usr/bin/env bash
# Fuzzes pixmill's untrusted-input parsers for a bounded time each, on one core:
#   probe         format sniffing, header parsing and the container walk of uploads
#                 (regressions: actors/tests/fuzz_regressions/, replayed by
#                 `cargo test -p pixmill-actors`)
#   token_header  the screening of bearer tokens: JOSE header, algorithm, key references,
#                 unverified `iss` (regressions: tests/fixtures/token_fuzz_regressions/,
#                 replayed by `cargo test --lib auth::header`)
# A crash, hang or runaway allocation is copied into the target's regression folder, where
# the tests replay it from then on, and the script fails.
#
#   FUZZ_SECONDS   how long to fuzz each target (default 60)
#   FUZZ_TARGETS   which targets (default "probe token_header")
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
targets=${FUZZ_TARGETS:-probe token_header}
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

artifacts=$(mktemp -d)
trap 'rm -rf "$artifacts"' EXIT

# Where each target's findings are kept, and the longest input worth trying.
regressions_of() {
    case $1 in
        probe) echo "$root/actors/tests/fuzz_regressions" ;;
        token_header) echo "$root/tests/fixtures/token_fuzz_regressions" ;;
        *) echo "fuzz: unknown target $1" >&2; return 1 ;;
    esac
}
max_len_of() {
    case $1 in
        probe) echo 65536 ;;
        # Just over the verifier's 16 KiB limit, so the oversized path is reached too.
        token_header) echo 17000 ;;
    esac
}

# The corpus grows across runs; it is seeded every time, so new fixtures join it.
seed() {
    local target=$1 corpus=$2 regressions=$3 seeds=()
    if [[ $target == probe ]]; then
        seeds=("$root"/tests/fixtures/cases/* "$root"/tests/fixtures/corpus/*)
    fi
    for seed in "${seeds[@]}" "$regressions"/*; do
        # Large photos only slow libFuzzer down; the header is what is fuzzed.
        if [[ -f $seed && $(stat -c %s "$seed") -le 65536 && $seed != *.md && $seed != *.tsv ]]; then
            cp "$seed" "$corpus/"
        fi
    done
}

cd "$root"
# One build for all targets: they share the sanitizer build of their dependencies.
"${pin[@]}" cargo fuzz build

failed=0
for target in $targets; do
    regressions=$(regressions_of "$target")
    corpus=$home/corpus/$target
    mkdir -p "$corpus" "$artifacts/$target"
    seed "$target" "$corpus" "$regressions"
    echo "fuzz: $target for ${seconds}s on cpu ${cpu:-any}, corpus $corpus"
    status=0
    "${pin[@]}" cargo fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len="$(max_len_of "$target")" -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$artifacts/$target/" -print_final_stats=1 ||
        status=$?

    found=("$artifacts/$target"/*)
    if [[ -e ${found[0]} ]]; then
        cp "${found[@]}" "$regressions/"
        echo "fuzz: $target FAILED; kept in ${regressions#"$root"/}/:"
        for file in "${found[@]}"; do echo "  $(basename "$file")"; done
        failed=1
    elif [[ $status -ne 0 ]]; then
        echo "fuzz: cargo fuzz run $target exited with $status without an artifact" >&2
        failed=1
    else
        echo "fuzz: $target: no crash in ${seconds}s"
    fi
done
exit "$failed"
