#!/usr/bin/env bash
# Remove what systemd/install.sh installed. The outbox (events not yet at HQ), the config and the
# users stay unless --purge: removing the code must never lose a shopper's touchpoints.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: sudo systemd/uninstall.sh [--purge] [--root DIR] [--no-systemctl]

Stops, disables and removes the Touchpoint units and the virtualenv /opt/touchpoint.
Keeps /var/lib/touchpoint (the outbox: events HQ may not have yet), /etc/touchpoint and
the users touchpoint and touchpoint-kiosk, unless --purge.

Options:
  --purge          also delete /var/lib/touchpoint, /var/lib/touchpoint-kiosk,
                   /etc/touchpoint and the two users
  --root DIR       uninstall below DIR instead of / (as install.sh --root)
  --no-systemctl   do not call systemctl
  -h, --help       this text

Environment: SYSTEMCTL (default systemctl).

Example:
  sudo systemd/uninstall.sh            keep the data, e.g. before a reinstall
  sudo systemd/uninstall.sh --purge    the device leaves service
EOF
}

die() { echo "uninstall.sh: $*" >&2; exit 2; }
say() { echo "uninstall.sh: $*"; }

PURGE=0 ROOT="" RUN_SYSTEMCTL=1
SYSTEMCTL=${SYSTEMCTL:-systemctl}
while [ $# -gt 0 ]; do
    case "$1" in
        --purge) PURGE=1; shift ;;
        --root) ROOT=${2:-}; shift 2 || die "--root needs a directory" ;;
        --no-systemctl) RUN_SYSTEMCTL=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (sudo)"
if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die "--root $ROOT: no such directory"
    ROOT=$(cd "$ROOT" && pwd)
fi

UNIT_DIR="$ROOT/etc/systemd/system"
UNITS=(touchpoint-kiosk-browser.service touchpoint-sync.service touchpoint-edge.service)
installed=()
for unit in "${UNITS[@]}"; do
    [ -f "$UNIT_DIR/$unit" ] && installed+=("$unit")
done

if [ ${#installed[@]} -gt 0 ] && [ "$RUN_SYSTEMCTL" -eq 1 ]; then
    if [ -n "$ROOT" ]; then
        "$SYSTEMCTL" --root="$ROOT" --quiet disable "${installed[@]}"
    else
        "$SYSTEMCTL" --quiet disable --now "${installed[@]}"
    fi
fi
for unit in "${installed[@]}"; do
    rm -f "$UNIT_DIR/$unit"
    say "removed $unit"
done
rm -rf "$UNIT_DIR/touchpoint-kiosk-browser.service.d" "$UNIT_DIR/touchpoint-edge.service.wants"
rm -f "$ROOT/etc/modules-load.d/touchpoint.conf"
if [ -z "$ROOT" ] && [ "$RUN_SYSTEMCTL" -eq 1 ]; then
    "$SYSTEMCTL" daemon-reload
    # A unit that failed on its way down (e.g. killed after TimeoutStopSec) would otherwise stay
    # listed as "not-found failed" until the next boot.
    for unit in "${installed[@]}"; do
        "$SYSTEMCTL" reset-failed "$unit" 2>/dev/null || true
    done
fi
rm -rf "$ROOT/opt/touchpoint"
say "removed /opt/touchpoint"

if [ "$PURGE" -eq 0 ]; then
    say "kept /var/lib/touchpoint, /etc/touchpoint and the users (--purge deletes them)"
    exit 0
fi
rm -rf "$ROOT/var/lib/touchpoint" "$ROOT/var/lib/touchpoint-kiosk" "$ROOT/etc/touchpoint"
prefix=()
[ -z "$ROOT" ] || prefix=(--prefix "$ROOT")
for user in touchpoint-kiosk touchpoint; do
    if [ -z "$ROOT" ] && [ "$RUN_SYSTEMCTL" -eq 1 ] && id -u "$user" >/dev/null 2>&1; then
        # The browser's login session leaves the user's systemd --user running for a while
        # (logind's UserStopDelaySec=); userdel refuses a user with processes.
        "$SYSTEMCTL" stop "user@$(id -u "$user").service" 2>/dev/null || true
    fi
    if grep -q "^$user:" "$ROOT/etc/passwd"; then
        userdel "${prefix[@]}" "$user"
        say "removed user $user"
    fi
    if grep -q "^$user:" "$ROOT/etc/group"; then  # userdel keeps it without USERGROUPS_ENAB
        groupdel "${prefix[@]}" "$user"
    fi
done
say "purged the outbox, the config and the users"
