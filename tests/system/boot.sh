#!/usr/bin/env bash
# Boot the system check's disk image once under qemu-system-x86_64 (emulated, or KVM where it
# works), with its own kernel and systemd as PID 1, until it powers itself off.
#   tests/system/boot.sh IMAGE_DIR DISK WORK PHASE READER_TTY CONSOLE_LOG TIMEOUT_S
# The guest gets: DISK as /dev/vda; the checkout (read-only) and WORK as 9p shares; READER_TTY (a
# host pty the simulated RFID reader writes to) as its first UART, /dev/ttyS0; its console on the
# second UART, written to CONSOLE_LOG and shown here as it comes; a standard VGA display for cage
# and Chromium; no network card. Exits with qemu's code, or 124 when the guest ran out of time.
set -euo pipefail

IMAGE_DIR=$1 DISK=$2 WORK=$3 PHASE=$4 READER_TTY=$5 CONSOLE_LOG=$6 TIMEOUT_S=$7
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Emulation by default: on this project's machines /dev/kvm opens but a nested guest hangs in
# its first instructions ("failed to set MSR 0x10a" with -cpu host). SYSTEM_CHECK_ACCEL=kvm
# where KVM works.
accel=(-accel "tcg,thread=multi" -cpu max)
if [ "${SYSTEM_CHECK_ACCEL:-tcg}" = kvm ]; then
    accel=(-accel kvm -cpu host)
fi
# The screen: a virtio GPU. wlroots 0.15 (bookworm's, under cage) refuses a DRM device without
# PRIME import, which the standard VGA's bochs driver lacks ("PRIME import not supported").
display=(-vga none -device virtio-vga)
[ "${SYSTEM_CHECK_DISPLAY:-virtio}" = virtio ] || display=(-vga std)

: > "$CONSOLE_LOG"
tail -n +1 -f "$CONSOLE_LOG" &
tail_pid=$!
qemu_pid=""
# shellcheck disable=SC2317 # called by the trap
stop() {  # also when this script is interrupted: timeout passes the TERM on to qemu
    [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
    kill "$tail_pid" 2>/dev/null || true
}
trap stop EXIT

timeout --kill-after=20 "$TIMEOUT_S" qemu-system-x86_64 "${accel[@]}" -machine q35 -smp 2 -m 4096 \
    -kernel "$IMAGE_DIR/vmlinuz" -initrd "$IMAGE_DIR/initrd.img" \
    -append "root=/dev/vda rw console=ttyS1,115200 quiet systemd.show_status=false touchpoint.check=$PHASE" \
    -drive "file=$DISK,format=raw,if=virtio" \
    -virtfs "local,path=$CHECKOUT,mount_tag=src,security_model=none,readonly=on" \
    -virtfs "local,path=$WORK,mount_tag=work,security_model=none" \
    -chardev "serial,id=reader,path=$READER_TTY" -serial chardev:reader \
    -chardev "file,id=console,path=$CONSOLE_LOG" -serial chardev:console \
    "${display[@]}" -display none -nic none -no-reboot -monitor none </dev/null &
qemu_pid=$!
code=0
wait "$qemu_pid" || code=$?
qemu_pid=""
sleep 0.5  # the last console lines
exit "$code"
