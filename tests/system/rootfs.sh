#!/usr/bin/env bash
# Build (once) the Debian bookworm system the system check boots: debootstrap into a folder, the
# packages below from Debian's own archive, a kernel and initramfs, then a tarball of the folder
# and a bootable ext4 disk image made from it. Both are cached, keyed by this file's content (the
# package list and every step), so a rerun with nothing changed takes no time.
#   tests/system/rootfs.sh [amd64|arm64]    prints the cache directory
# arm64 gets no kernel and no image: it is entered with qemu-user-static (tests/system/arm64.sh).
set -euo pipefail

ARCH=${1:-amd64}
SUITE=bookworm
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${SYSTEM_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/touchpoint-system-check}

# What a Raspberry Pi OS Bookworm device with a screen has, plus what the check itself uses:
# a broker for the sync agent and HQ (mosquitto), grim for the screenshot from inside,
# sqlite3 and curl to look at the outbox and the ports.
PACKAGES=(systemd systemd-sysv udev dbus libpam-systemd kmod login passwd sudo procps
          python3 python3-venv mosquitto sqlite3 curl ca-certificates)
DISPLAY_PACKAGES=(chromium cage xwayland polkitd grim libgl1-mesa-dri fonts-dejavu-core fonts-liberation2)
if [ "$ARCH" = amd64 ]; then
    PACKAGES+=(linux-image-amd64 initramfs-tools "${DISPLAY_PACKAGES[@]}")
fi

key=$({ cat "${BASH_SOURCE[0]}"; echo "$ARCH"; } | sha256sum | cut -c1-16)
OUT="$CACHE/$SUITE-$ARCH-$key"
if [ -f "$OUT/done" ]; then
    echo "$OUT"
    exit 0
fi

mirror() {  # the Debian archive this machine's apt already uses (DEBIAN_MIRROR overrides it)
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    # shellcheck disable=SC2016 # apt's own $(FIELD) placeholders, not the shell's
    apt-get indextargets --format '$(REPO_URI) $(CODENAME)' 'Created-By: Packages' 2>/dev/null |
        awk -v suite="$SUITE" '$2 == suite {print $1; exit}'
}
MIRROR=$(mirror)
[ -n "$MIRROR" ] || { echo "rootfs.sh: no Debian $SUITE archive in apt's sources; set DEBIAN_MIRROR" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "rootfs.sh: run as root (debootstrap, chroot)" >&2; exit 1; }
mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/build.XXXXXX")
ROOT="$WORK/root"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

in_root() {  # run "$@" chrooted, with /proc, /sys and /dev mounted in a private mount namespace
    # shellcheck disable=SC2016 # the inner script's own $1 and $root
    unshare --mount --fork -- sh -c '
        root=$1; shift
        mount -t proc proc "$root/proc" && mount --rbind /sys "$root/sys" && mount --rbind /dev "$root/dev"
        exec chroot "$root" "$@"' sh "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"
}

echo "rootfs.sh: debootstrap $SUITE $ARCH from $MIRROR (a few minutes)" >&2
foreign=()
[ "$ARCH" = "$(dpkg --print-architecture)" ] || foreign=(--foreign)
debootstrap --variant=minbase --arch="$ARCH" "${foreign[@]}" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
if [ ${#foreign[@]} -gt 0 ]; then
    in_root /debootstrap/debootstrap --second-stage >"$WORK/debootstrap2.log" 2>&1 ||
        { tail -20 "$WORK/debootstrap2.log" "$ROOT/debootstrap/debootstrap.log" >&2; exit 1; }
fi

# No service may start while packages are installed into the folder.
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" > "$ROOT/etc/apt/sources.list"
echo "rootfs.sh: apt-get install ${PACKAGES[*]}" >&2
in_root apt-get update -qq >"$WORK/apt.log" 2>&1
in_root apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >>"$WORK/apt.log" 2>&1 ||
    { tail -30 "$WORK/apt.log" >&2; exit 1; }
in_root apt-get clean
rm -f "$ROOT/usr/sbin/policy-rc.d"
rm -rf "$ROOT"/var/lib/apt/lists/*

echo touchpoint-pi > "$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 touchpoint-pi\n::1 localhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
mkdir -p "$ROOT/var/log/journal"  # a persistent journal: the second boot reads the first one's shutdown
# Timers that would run apt or disk jobs in the middle of a five-minute check, and nothing else.
for timer in apt-daily apt-daily-upgrade e2scrub_all fstrim man-db; do
    ln -sf /dev/null "$ROOT/etc/systemd/system/$timer.timer"
done

if [ "$ARCH" = amd64 ]; then
    # The check reaches the system through two virtio 9p shares: the checkout (read-only, where
    # an operator runs install.sh from) and a work folder (the wheels in, the results out).
    cat > "$ROOT/etc/fstab" <<'EOF'
/dev/vda  /                 ext4  rw,errors=remount-ro  0 1
src       /srv/check/src    9p    trans=virtio,version=9p2000.L,ro,nofail,x-systemd.requires=systemd-modules-load.service  0 0
work      /srv/check/work   9p    trans=virtio,version=9p2000.L,rw,nofail,x-systemd.requires=systemd-modules-load.service  0 0
EOF
    printf '9pnet_virtio\n9p\n' > "$ROOT/etc/modules-load.d/system-check.conf"
    mkdir -p "$ROOT/srv/check/src" "$ROOT/srv/check/work"
    # The check's own unit; everything it runs comes from the shared checkout, so changing the
    # checks needs no new image.
    cat > "$ROOT/etc/systemd/system/system-check.service" <<'EOF'
[Unit]
Description=Touchpoint system check (tests/system/guest.py from the shared checkout)
After=multi-user.target
RequiresMountsFor=/srv/check/src /srv/check/work

[Service]
Type=simple
ExecStart=/usr/bin/python3 /srv/check/src/tests/system/guest.py
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOF
    mkdir -p "$ROOT/etc/systemd/system/multi-user.target.wants"
    ln -s /etc/systemd/system/system-check.service "$ROOT/etc/systemd/system/multi-user.target.wants/"
    kernels=("$ROOT"/boot/vmlinuz-*) initrds=("$ROOT"/boot/initrd.img-*)
    cp "${kernels[-1]}" "$WORK/vmlinuz"
    cp "${initrds[-1]}" "$WORK/initrd.img"
fi

tar -C "$ROOT" --numeric-owner --xattrs -cf "$WORK/rootfs.tar" .
if [ "$ARCH" = amd64 ]; then
    truncate -s 6G "$WORK/disk.img"
    mkfs.ext4 -q -L touchpoint -d "$ROOT" "$WORK/disk.img"
fi
rm -rf "$ROOT"
cp "$HERE/rootfs.sh" "$WORK/rootfs.sh"  # what built it
touch "$WORK/done"
rm -rf "$OUT"
mv "$WORK" "$OUT"
trap - EXIT
echo "$OUT"
