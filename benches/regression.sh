#!/usr/bin/env bash
# The kernel's cheap regression check (issue 5), run by scripts/test.sh: instruction counts,
# which do not move with the load on the machine as times do. For each op, callgrind counts
# on one fixed photo (tests/fixtures/corpus/Bridge_by_Sander_Klootwijk.jpg):
#   - the op's own decode (its floor: `pixmill-bench count --floor OP`), and
#   - the whole op (`pixmill-bench count --op OP`),
# each divided by a full-size decode of the same photo counted in the same run (the peer):
#   decode = floor / peer             which decode the op chose (a lost shrink-on-load shows)
#   work   = (op - floor) / peer      what the operation and the encoder cost on top
# Either more than 3% away from benches/regression/baseline.tsv fails the check: above it a
# regression, below it an improvement to record (--update, saying why in the commit), so the
# baseline stays tight. 3% of `work` is a few million instructions on this photo: a wider
# blur kernel or a lost SIMD path shows, a single extra copy of a plane may not. What
# callgrind cannot see (page faults, cache misses) the timed benchmark (benches/kernel.sh)
# measures.
#
# The counts depend on which SIMD paths libjpeg-turbo and the resizers pick at run time, so
# the baseline records the CPU features it was made with and a CPU with others is refused.
#
#   benches/regression.sh            check against benches/regression/baseline.tsv
#   benches/regression.sh --update   record this run's ratios as the baseline
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pixmill/target}"
baseline="$repo/benches/regression/baseline.tsv"
photo="$repo/tests/fixtures/corpus/Bridge_by_Sander_Klootwijk.jpg"
photo_size='{"width":4352,"height":2448}'
tolerance=0.03
ops=(thumbnail resize grayscale blur webp)

update=false
case "${1:-}" in
    --update) update=true ;;
    "") ;;
    *) echo "usage: benches/regression.sh [--update]" >&2; exit 2 ;;
esac

bash "$repo/scripts/build-deps.sh" valgrind
(cd "$repo" && cargo build --release --locked --quiet -p pixmill-bench --features turbo)
bench="$CARGO_TARGET_DIR/release/pixmill-bench"

# The SIMD levels the counted code chooses between (valgrind hides AVX-512 from it).
cpu="$(grep -o -w -E 'sse4_1|avx2|bmi2' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//')"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Instructions executed inside the counted run of `pixmill-bench count ARGS`; the size it
# printed goes to $work/size.
count() {
    local out="$work/callgrind.out"
    rm -f "$out"
    if ! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*counted_run*' \
        --callgrind-out-file="$out" "$bench" count "$@" "$photo" >"$work/size" 2>"$work/valgrind.log"; then
        cat "$work/valgrind.log" >&2
        echo "regression.sh: pixmill-bench count $* failed under callgrind" >&2
        return 1
    fi
    local n
    n="$(awk '/^summary:/ { print $2 }' "$out" 2>/dev/null)"
    if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n == 0)); then
        echo "regression.sh: callgrind counted nothing for pixmill-bench count $*" >&2
        return 1
    fi
    echo "$n"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'; }
# ok, regressed (above the recorded value by more than the tolerance) or improved (below).
verdict() {
    awk -v r="$1" -v w="$2" -v t="$tolerance" \
        'BEGIN { print (r > w * (1 + t)) ? "regressed" : (r < w * (1 - t)) ? "improved" : "ok" }'
}

peer="$(count --floor resize)"
if [[ "$(cat "$work/size")" != "$photo_size" ]]; then
    echo "regression.sh: the peer decoded $(cat "$work/size"), not the full $photo_size" >&2
    exit 1
fi
echo "peer: full-size decode of $(basename "$photo"): $peer instructions"

declare -A recorded_decode=() recorded_work=()
recorded_cpu=""
if [[ -f "$baseline" ]]; then
    while IFS=$'\t' read -r op decode cost _; do
        case "$op" in
            "# cpu:"*) recorded_cpu="${op#\# cpu: }" ;;
            "" | "#"* | op) ;;
            *) recorded_decode[$op]="$decode"; recorded_work[$op]="$cost" ;;
        esac
    done <"$baseline"
fi
if ! $update && [[ "$recorded_cpu" != "$cpu" ]]; then
    echo "regression.sh: the baseline was recorded on a CPU with [$recorded_cpu], this one has [$cpu];" \
        "counts differ between SIMD paths, so record a baseline for this CPU (--update) to compare here" >&2
    exit 1
fi

failed=0
rows=()
for op in "${ops[@]}"; do
    floor="$(count --floor "$op")"
    whole="$(count --op "$op")"
    decode="$(ratio "$floor" "$peer")"
    cost="$(ratio "$((whole - floor))" "$peer")"
    rows+=("$op"$'\t'"$decode"$'\t'"$cost"$'\t'"$whole")
    line="check=$op instructions=$whole decode=$decode work=$cost"
    if $update; then
        echo "$line"
        continue
    fi
    want_decode="${recorded_decode[$op]:-}" want_work="${recorded_work[$op]:-}"
    if [[ -z "$want_decode" || -z "$want_work" ]]; then
        echo "$line unrecorded"
        failed=1
        continue
    fi
    a="$(verdict "$decode" "$want_decode")" b="$(verdict "$cost" "$want_work")"
    result=ok
    [[ "$a $b" == *improved* ]] && result=improved
    [[ "$a $b" == *regressed* ]] && result=regressed
    [[ "$result" == ok ]] || failed=1
    echo "$line baseline_decode=$want_decode baseline_work=$want_work $result"
done

if $update; then
    {
        printf '# cpu: %s\n' "$cpu"
        printf 'op\tdecode_to_full_decode\twork_to_full_decode\top_instructions\n'
        printf '%s\n' "${rows[@]}"
    } >"$baseline"
    echo "regression.sh: wrote $baseline"
    exit 0
fi
pct="$(awk -v t="$tolerance" 'BEGIN { printf "%g%%", t * 100 }')"
if ((failed)); then
    echo "regression.sh: an op's decode or work moved more than $pct from its recorded ratio (or is" \
        "unrecorded). A regression: find the change that did it. An improvement or an intended change:" \
        "rerun with --update and say why in the commit." >&2
    exit 1
fi
echo "regression.sh: every op's decode and work within $pct of the recorded ratios"
