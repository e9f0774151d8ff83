#!/usr/bin/env bash
# The kernel benchmark in one command (issue 5): pixmill's kernel against libvips and Pillow,
# CPU time per image on one core, over the corpus.
#
#   benches/kernel.sh                 full run, turbo build (about 10 minutes on 2 cores)
#   benches/kernel.sh --quick         one round on four files: a smoke run
#   benches/kernel.sh --rounds 3      fewer or more rounds
#   benches/kernel.sh --default-build without libjpeg-turbo (a Rust toolchain alone)
#
# Results go to benches/results/ (kernel.json, kernel.md, kernel.png, contact-sheet.png).
# Environment: PIXMILL_CORPUS=dir uses an existing corpus copy instead of fetching;
# PIXMILL_BENCH_CORE=N pins to another core (default 1).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="$HOME/.cache/pixmill"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
venv="$cache/bench-venv"
core="${PIXMILL_BENCH_CORE:-1}"
command="benches/kernel.sh $*"

build=turbo
args=()
for arg in "$@"; do
    case "$arg" in
        --default-build) build=default ;;
        *) args+=("$arg") ;;
    esac
done
features=()
[[ "$build" == turbo ]] && features=(--features turbo)

# 1. Python tools, in a venv outside the clone.
if ! "$venv/bin/python" -c 'import pyvips, PIL, matplotlib' 2>/dev/null; then
    echo "kernel.sh: creating $venv (pyvips, pyvips-binary, Pillow, matplotlib)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q pyvips pyvips-binary Pillow matplotlib
fi

# 2. The harness, in release. libjpeg-turbo needs cmake and nasm to build.
[[ "$build" == turbo ]] && bash "$repo/scripts/build-deps.sh"
(cd "$repo" && cargo build --release -p pixmill-bench "${features[@]}")

# 3. The corpus (fetched once, verified every time).
corpus="$(PIXMILL_PIP="$venv/bin/python -m pip" "$repo/benches/corpus.sh" | tail -n 1)"

# 4. Driver and kernel child on one core.
exec taskset -c "$core" "$venv/bin/python" "$repo/benches/kernel.py" \
    --bin "$CARGO_TARGET_DIR/release/pixmill-bench" --corpus "$corpus" \
    --build "$build" --command "$command" "${args[@]}"
