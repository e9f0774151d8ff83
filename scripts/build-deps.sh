#!/usr/bin/env bash
# Installs what the `turbo` feature needs to build libjpeg-turbo (cmake and nasm, from
# Debian's packages) when it is missing, and any further tool named on the command line
# whose Debian package has its name (`scripts/build-deps.sh valgrind`). The default build
# needs none of them.
set -euo pipefail

missing=()
for tool in cmake nasm "$@"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "build-deps: ${missing[*]} missing; install them (apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "build-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
timeout 600 apt-get update -qq >/dev/null
timeout 900 apt-get install -y -qq "${missing[@]}" >/dev/null
