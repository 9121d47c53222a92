#!/usr/bin/env bash
# The wheel an operator installs (`pip wheel --no-deps .`) and a folder of its dependencies' wheels,
# because the booted system has no network: install.sh's pip gets PIP_NO_INDEX and PIP_FIND_LINKS,
# the PIP_* variables the README names for a device behind a mirror.
#   tests/system/wheels.sh PYTHON OUTDIR [amd64|arm64]
# writes OUTDIR/dist/touchpoint-*.whl and OUTDIR/wheelhouse/; the wheelhouse is cached, keyed by
# pyproject.toml, so only the first run downloads.
set -euo pipefail

PYTHON=$1 OUTDIR=$2 ARCH=${3:-amd64}
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${SYSTEM_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/touchpoint-system-check}
export PIP_DISABLE_PIP_VERSION_CHECK=1

mkdir -p "$OUTDIR"
rm -rf "$OUTDIR/dist"
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
# A copy, so that setuptools' build/ and egg-info never land in the checkout being tested.
tar -C "$CHECKOUT" --exclude=./.git --exclude=./.venv --exclude=./var --exclude=./build -cf - . | tar -C "$build" -xf -
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$OUTDIR/dist" "$build"
wheels=("$OUTDIR"/dist/touchpoint-*.whl)
wheel=${wheels[0]}

key=$({ sha256sum < "$CHECKOUT/pyproject.toml"; echo "$ARCH"; } | sha256sum | cut -c1-16)
house="$CACHE/wheelhouse-$ARCH-$key"
if [ ! -f "$house/done" ]; then
    rm -rf "$house"
    mkdir -p "$house"
    if [ "$ARCH" = amd64 ]; then
        # Binary wheels for this platform (bookworm's glibc and Python 3.11, as on the image),
        # pure-Python ones built where a project ships only an sdist.
        "$PYTHON" -m pip wheel --quiet --wheel-dir "$house" "$wheel"
    else
        # The pure-Python wheels from the amd64 house serve every platform; the rest must exist
        # as manylinux aarch64 wheels for CPython 3.11 (bookworm's Python on a Raspberry Pi).
        amd64=$("$0" "$PYTHON" "$build/amd64" amd64 | tail -1)
        platforms=(--platform manylinux2014_aarch64)  # pip matches platform tags exactly: name each glibc
        for minor in $(seq 17 36); do
            platforms+=(--platform "manylinux_2_${minor}_aarch64")
        done
        "$PYTHON" -m pip download --quiet --only-binary=:all: "${platforms[@]}" \
            --python-version 3.11 --implementation cp --abi cp311 --find-links "$amd64" \
            --dest "$house" "$wheel"
        cp -n "$amd64"/*-none-any.whl "$house"/ 2>/dev/null || true
    fi
    rm -f "$house"/touchpoint-*.whl
    touch "$house/done"
fi
rm -rf "$OUTDIR/wheelhouse"
cp -r "$house" "$OUTDIR/wheelhouse"
echo "$house"
