#!/usr/bin/env bash
# The kernel's cheap regression check (issue 5), run by scripts/test.sh: the instructions
# each op executes on one fixed photo, counted by callgrind, divided by the instructions of a
# full-size decode of the same photo counted in the same run (the peer). Counts do not move
# with the load on the machine as times do, and the ratio carries over between machines and
# libjpeg-turbo builds, since the peer runs the same decoder. An op more than 3% above its
# recorded ratio fails the check: a lost shrink-on-load, an extra copy or colour conversion,
# a wider blur kernel. What callgrind cannot see (page faults, cache misses) the timed
# benchmark (benches/kernel.sh) measures.
#
#   benches/regression.sh            check against benches/regression/baseline.tsv
#   benches/regression.sh --update   record this run's ratios as the baseline
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pixmill/target}"
baseline="$repo/benches/regression/baseline.tsv"
photo="$repo/tests/fixtures/corpus/Bridge_by_Sander_Klootwijk.jpg"
tolerance=1.03
ops=(thumbnail resize grayscale blur webp)

update=false
case "${1:-}" in
    --update) update=true ;;
    "") ;;
    *) echo "usage: benches/regression.sh [--update]" >&2; exit 2 ;;
esac

if ! command -v valgrind >/dev/null; then
    echo "regression.sh: installing valgrind" >&2
    apt-get update -q && apt-get install -y -q valgrind
fi
bash "$repo/scripts/build-deps.sh"
(cd "$repo" && cargo build --release --locked --quiet -p pixmill-bench --features turbo)
bench="$CARGO_TARGET_DIR/release/pixmill-bench"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Instructions executed inside the counted run of `pixmill-bench count ARGS`.
count() {
    local out="$work/callgrind.out"
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*counted_run*' \
        --callgrind-out-file="$out" "$bench" count "$@" "$photo" >/dev/null 2>"$work/valgrind.log" || {
        cat "$work/valgrind.log" >&2
        return 1
    }
    awk '/^summary:/ { print $2 }' "$out"
}

peer="$(count --floor resize)"
if [[ -z "$peer" || "$peer" -eq 0 ]]; then
    echo "regression.sh: callgrind counted nothing for the full-size decode" >&2
    exit 1
fi
echo "peer: full-size decode of $(basename "$photo"): $peer instructions"

declare -A recorded=()
if [[ -f "$baseline" ]]; then
    while IFS=$'\t' read -r op ratio _; do
        [[ "$op" == op ]] || recorded[$op]="$ratio"
    done <"$baseline"
fi

failed=0
rows=()
for op in "${ops[@]}"; do
    instructions="$(count --op "$op")"
    ratio="$(awk -v a="$instructions" -v b="$peer" 'BEGIN { printf "%.4f", a / b }')"
    rows+=("$op"$'\t'"$ratio"$'\t'"$instructions")
    want="${recorded[$op]:-}"
    if [[ -z "$want" ]]; then
        verdict=unrecorded
        $update || failed=1
    else
        verdict="$(awk -v r="$ratio" -v w="$want" -v t="$tolerance" \
            'BEGIN { print (r > w * t) ? "regressed" : (r < w / t) ? "improved" : "ok" }')"
        [[ "$verdict" == regressed ]] && failed=1
    fi
    echo "check=$op instructions=$instructions ratio=$ratio baseline=${want:-none} $verdict"
done

if $update; then
    { printf 'op\tratio_to_full_decode\tinstructions\n'; printf '%s\n' "${rows[@]}"; } >"$baseline"
    echo "regression.sh: wrote $baseline"
    exit 0
fi
if ((failed)); then
    echo "regression.sh: an op executes more than 3% more instructions per decoded instruction than recorded;" \
        "find the change that did it, or, if it is intended, rerun with --update and say why in the commit" >&2
    exit 1
fi
echo "regression.sh: every op within 3% of its recorded ratio (an 'improved' op: record it with --update)"
