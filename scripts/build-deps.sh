#!/usr/bin/env bash
# Installs what the `turbo` feature needs to build libjpeg-turbo (cmake and nasm, from
# Debian's packages) when it is missing. The default build needs neither.
set -euo pipefail

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v nasm >/dev/null || missing+=(nasm)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "build-deps: the turbo feature needs ${missing[*]}; install them (apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "build-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
timeout 600 apt-get update -qq >/dev/null
timeout 900 apt-get install -y -qq "${missing[@]}" >/dev/null
