#!/usr/bin/env bash
# ./dev system-check: the units run for real (issue 17). Builds (or takes from the cache) a Debian
# bookworm system, boots it with its own kernel and systemd under qemu, installs the wheel built
# from this checkout with systemd/install.sh as README says, proves the units' promises inside
# (tests/system/guest.py), powers it off, boots it again to check the shutdown and uninstall,
# then (unless --no-arm64) installs the same wheel into an arm64 bookworm under qemu-user-static.
#   tests/system/check.sh [--arm64|--no-arm64]      (as root; ./dev system-check installs the tools)
# Leaves var/system-check/ (console logs, results) and docs/screenshots/system-check-mirror.png.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ARM64=1
for arg in "$@"; do
    case "$arg" in
        --arm64) ARM64=1 ;;
        --no-arm64) ARM64=0 ;;
        *) echo "usage: tests/system/check.sh [--arm64|--no-arm64]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "check.sh: run as root (debootstrap, qemu, debugfs)" >&2; exit 2; }
VENV=${VENV:-.venv}
PYTHON="$VENV/bin/python"
RUN=var/system-check
BOOT_TIMEOUT_S=${BOOT_TIMEOUT_S:-1200}
started=$(date +%s)
step() { echo "== system-check [$(( $(date +%s) - started )) s] $*"; }

reader_pid=""
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    [ -z "$reader_pid" ] || kill "$reader_pid" 2>/dev/null || true
    [ -z "$reader_pid" ] || wait "$reader_pid" 2>/dev/null || true
    rm -f "$RUN/disk.img"
}
trap cleanup EXIT

step "the Debian bookworm amd64 image (cached after the first build)"
IMAGE_DIR=$(tests/system/rootfs.sh amd64)
rm -rf "$RUN"
mkdir -p "$RUN/work"
RUN=$(cd "$RUN" && pwd)
step "the wheel (pip wheel --no-deps .) and its dependencies' wheels"
tests/system/wheels.sh "$PYTHON" "$RUN/work" amd64 >/dev/null
cp --sparse=always "$IMAGE_DIR/disk.img" "$RUN/disk.img"

step "a simulated M100 reader on a host pty, which becomes the guest's /dev/ttyS0"
"$VENV/bin/touchpoint" simulate-reader --protocol m100 --scenario tests/system/scenario.json \
    >"$RUN/reader.out" 2>"$RUN/reader.err" &
reader_pid=$!
for _ in $(seq 100); do
    [ -s "$RUN/reader.out" ] && break
    sleep 0.1
done
reader_tty=$(head -1 "$RUN/reader.out")
[ -c "$reader_tty" ] || { echo "check.sh: the simulator printed no pty: $(cat "$RUN/reader.err")" >&2; exit 1; }

boot() {  # $1 phase
    step "boot: touchpoint.check=$1"
    local code=0
    tests/system/boot.sh "$IMAGE_DIR" "$RUN/disk.img" "$RUN/work" "$1" "$reader_tty" "$RUN/console-$1.log" \
        "$BOOT_TIMEOUT_S" || code=$?
    [ "$code" -ne 124 ] || echo "check.sh: the $1 boot did not power off within $BOOT_TIMEOUT_S s" >&2
    [ -f "$RUN/work/result-$1.json" ] || { "$PYTHON" tests/system/report.py "$RUN/work" "$1"; exit 1; }
}

boot install
step "the outbox on the powered-off disk"
"$PYTHON" tests/system/outbox_at_rest.py "$RUN/disk.img" "$RUN/work/outbox-after-poweroff.json" \
    "$RUN/work/result-install.json"
boot after
phases=(install after)
if [ -f "$RUN/work/mirror-screen.png" ]; then
    cp "$RUN/work/mirror-screen.png" docs/screenshots/system-check-mirror.png
fi

if [ "$ARM64" -eq 1 ]; then
    step "arm64: the same wheel in a Debian bookworm arm64 under qemu-user-static"
    tests/system/arm64.sh "$PYTHON" "$RUN/work" || true
    phases+=(arm64)
fi

step "results"
code=0
"$PYTHON" tests/system/report.py "$RUN/work" "${phases[@]}" | tee "$RUN/summary.txt" || code=$?
step "done in $(( $(date +%s) - started )) s"
exit "$code"
