#!/usr/bin/env bash
# The arm64 half of the system check (issue 17, item 3): the same wheel installed with install.sh
# into a Debian bookworm arm64 (a Raspberry Pi's architecture), every binary run by
# qemu-aarch64-static through binfmt_misc, then `guest.py arm64` checks imports and doctor.
#   tests/system/arm64.sh PYTHON WORK      writes WORK/result-arm64.json
# No systemd boots here: the arm64 system is a chroot (a qemu-system-aarch64 boot would need an
# arm64 kernel and firmware and take far longer emulated on two cores).
set -euo pipefail

PYTHON=$1 WORK=$2
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BINFMT=/proc/sys/fs/binfmt_misc
QEMU=/usr/bin/qemu-aarch64-static
mounted_binfmt=0 registered=0 root=""

# shellcheck disable=SC2317 # called by the trap
cleanup() {
    [ "$registered" -eq 0 ] || echo -1 > "$BINFMT/touchpoint-aarch64" || true
    [ "$mounted_binfmt" -eq 0 ] || umount "$BINFMT" || true
    [ -z "$root" ] || rm -rf "$root"
}
trap cleanup EXIT

[ -x "$QEMU" ] || { echo "arm64.sh: $QEMU missing (apt-get install qemu-user-static)" >&2; exit 1; }
if [ ! -e "$BINFMT/register" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT"
    mounted_binfmt=1
fi
if ! grep -qs "^interpreter $QEMU" "$BINFMT"/*aarch64* 2>/dev/null; then
    # The ELF header of an aarch64 executable; F: the interpreter is opened now, so it works in a chroot.
    printf '%s' ':touchpoint-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$QEMU"':F' \
        > "$BINFMT/register"
    registered=1
fi

image=$(tests/system/rootfs.sh arm64)
mkdir -p "$WORK/arm64"
WORK=$(cd "$WORK" && pwd)
"$CHECKOUT/tests/system/wheels.sh" "$PYTHON" "$WORK/arm64" arm64 >/dev/null
root=$(mktemp -d "$WORK/arm64-root.XXXXXX")
tar -C "$root" --numeric-owner -xf "$image/rootfs.tar"
mkdir -p "$root/srv/check/src" "$root/srv/check/work"

code=0
# A private mount namespace: every mount below goes away with it.
# shellcheck disable=SC2016 # the inner script's own variables
timeout --kill-after=20 2400 unshare --mount --fork -- sh -c '
    root=$1 src=$2 work=$3
    mount -t proc proc "$root/proc" && mount --rbind /sys "$root/sys" && mount --rbind /dev "$root/dev" &&
        mount --bind "$src" "$root/srv/check/src" && mount -o remount,bind,ro "$root/srv/check/src" &&
        mount --bind "$work" "$root/srv/check/work" &&
        exec chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root \
            python3 /srv/check/src/tests/system/guest.py arm64' sh "$root" "$CHECKOUT" "$WORK/arm64" || code=$?
[ ! -f "$WORK/arm64/result-arm64.json" ] || cp "$WORK/arm64/result-arm64.json" "$WORK/result-arm64.json"
exit "$code"
