#!/usr/bin/env bash
# Install (or upgrade) Touchpoint on a Raspberry Pi OS Bookworm device as systemd services.
# Run it again to upgrade: the code and the units are replaced, the config is kept.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: sudo systemd/install.sh --role mirror|kiosk --store ID --device ID [options]

Installs Touchpoint from this checkout (or --package) into /opt/touchpoint, writes
/etc/touchpoint/edge.toml from examples/ROLE.toml, and enables and (re)starts
touchpoint-edge, touchpoint-sync and touchpoint-kiosk-browser. Running it again upgrades;
an existing edge.toml is kept (--role, --store and --device are then optional).

Options:
  --role mirror|kiosk   which example config to start from
  --store ID            the store's id, 1 to 64 of a-z, 0-9 and '-'   (e.g. berlin-01)
  --device ID           the device's id within the store, same rules (e.g. mirror-03)
  --package FILE        install this wheel or sdist instead of the checkout
  --python PATH         the Python 3.11+ for the virtualenv (default: python3)
  --no-browser          leave out the kiosk browser (headless device)
  --no-apt              do not apt-get install cage, chromium, xwayland and polkitd
  --force-config        replace an existing /etc/touchpoint/edge.toml
  --root DIR            install below DIR instead of / (tests, images); units are enabled
                        offline there and nothing is started
  --no-systemctl        install the units but do not enable or start them
  -h, --help            this text

Environment: SYSTEMCTL (default systemctl), APT_GET (default apt-get), and pip's own
PIP_* variables (e.g. PIP_INDEX_URL) for the virtualenv's pip.

Example:
  sudo systemd/install.sh --role mirror --store berlin-01 --device mirror-03
EOF
}

die() { echo "install.sh: $*" >&2; exit 2; }
say() { echo "install.sh: $*"; }

CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROLE="" STORE="" DEVICE="" PACKAGE="" PYTHON=python3 ROOT=""
BROWSER_UNIT=1 APT=1 FORCE_CONFIG=0 RUN_SYSTEMCTL=1
SYSTEMCTL=${SYSTEMCTL:-systemctl}
APT_GET=${APT_GET:-apt-get}

while [ $# -gt 0 ]; do
    case "$1" in
        --role) ROLE=${2:-}; shift 2 || die "--role needs a value" ;;
        --store) STORE=${2:-}; shift 2 || die "--store needs a value" ;;
        --device) DEVICE=${2:-}; shift 2 || die "--device needs a value" ;;
        --package) PACKAGE=${2:-}; shift 2 || die "--package needs a file" ;;
        --python) PYTHON=${2:-}; shift 2 || die "--python needs a path" ;;
        --root) ROOT=${2:-}; shift 2 || die "--root needs a directory" ;;
        --no-browser) BROWSER_UNIT=0; shift ;;
        --no-apt) APT=0; shift ;;
        --force-config) FORCE_CONFIG=1; shift ;;
        --no-systemctl) RUN_SYSTEMCTL=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

identifier() {  # the rule of common.config.identifier
    [[ "$2" =~ ^[a-z0-9-]{1,64}$ ]] || die "$1 '$2' is not allowed: use 1 to 64 of a-z, 0-9 and '-'"
}

[ "$(id -u)" -eq 0 ] || die "run as root (sudo): it creates users and writes to /etc and /opt"
[ -z "$ROLE" ] || [[ "$ROLE" =~ ^(mirror|kiosk)$ ]] || die "--role '$ROLE' is not allowed: mirror or kiosk"
[ -z "$STORE" ] || identifier --store "$STORE"
[ -z "$DEVICE" ] || identifier --device "$DEVICE"
[ -z "$PACKAGE" ] || [ -f "$PACKAGE" ] || die "--package $PACKAGE: no such file"
if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die "--root $ROOT: no such directory"
    ROOT=$(cd "$ROOT" && pwd)
fi

VENV=/opt/touchpoint
CONFIG=/etc/touchpoint/edge.toml
if [ ! -f "$ROOT$CONFIG" ] || [ "$FORCE_CONFIG" -eq 1 ]; then
    if [ -z "$ROLE" ] || [ -z "$STORE" ] || [ -z "$DEVICE" ]; then
        die "a new $CONFIG needs --role, --store and --device (see --help)"
    fi
fi
UNITS=(touchpoint-edge.service touchpoint-sync.service)
[ "$BROWSER_UNIT" -eq 0 ] || UNITS+=(touchpoint-kiosk-browser.service)

existing_groups() {  # the comma-separated groups of $@ that exist on the target system
    local wanted found=()
    for wanted in "$@"; do
        grep -q "^$wanted:" "$ROOT/etc/group" && found+=("$wanted")
    done
    local IFS=,
    echo "${found[*]}"
}

ensure_user() {  # $1 user, $2 home, $3.. supplementary groups
    local user=$1 home=$2 groups
    shift 2
    groups=$(existing_groups "$@")
    local prefix=()
    [ -z "$ROOT" ] || prefix=(--prefix "$ROOT")
    if grep -q "^$user:" "$ROOT/etc/passwd"; then
        [ -z "$groups" ] || usermod "${prefix[@]}" -a -G "$groups" "$user"
    else
        useradd "${prefix[@]}" --system --user-group --no-create-home --home-dir "$home" \
            --shell /usr/sbin/nologin ${groups:+--groups "$groups"} "$user"
        say "created user $user${groups:+ (groups $groups)}"
    fi
}

install_browser_packages() {
    local missing=()
    [ -x "$ROOT/usr/bin/cage" ] || missing+=(cage)
    [ -x "$ROOT/usr/bin/chromium" ] || [ -x "$ROOT/usr/bin/chromium-browser" ] || missing+=(chromium)
    # cage takes the screen through logind's Session.Activate, which logind grants only through
    # polkit: without polkitd cage fails with "Could not activate session: Permission denied"
    # (found by tests/system/check.sh; Raspberry Pi OS Lite does not necessarily have it).
    [ -x "$ROOT/usr/lib/polkit-1/polkitd" ] || missing+=(polkitd)
    # Bookworm's cage (0.1.4) will not start without Xwayland ("Cannot create XWayland server"),
    # which its package only recommends.
    [ -x "$ROOT/usr/bin/Xwayland" ] || missing+=(xwayland)
    [ ${#missing[@]} -eq 0 ] && return
    if [ "$APT" -eq 0 ] || [ -n "$ROOT" ]; then
        say "warning: ${missing[*]} not installed; the kiosk browser will not start until they are"
        return
    fi
    DEBIAN_FRONTEND=noninteractive "$APT_GET" install -y --no-install-recommends "${missing[@]}"
}

browser_drop_in() {  # Raspberry Pi OS has shipped Chromium as chromium-browser
    local dir="$ROOT/etc/systemd/system/touchpoint-kiosk-browser.service.d"
    if [ ! -x "$ROOT/usr/bin/chromium" ] && [ -x "$ROOT/usr/bin/chromium-browser" ]; then
        mkdir -p "$dir"
        printf '[Service]\nEnvironment=BROWSER=/usr/bin/chromium-browser\n' > "$dir/browser.conf"
    else
        rm -rf "$dir"
    fi
}

install_code() {
    [ -x "$ROOT$VENV/bin/python" ] || "$PYTHON" -m venv "$ROOT$VENV"
    "$ROOT$VENV/bin/python" -m pip install --quiet --upgrade "${PACKAGE:-$CHECKOUT}"
    say "installed $("$ROOT$VENV/bin/python" -c 'import importlib.metadata as m; print("touchpoint", m.version("touchpoint"))') in $VENV"
}

write_config() {
    local target="$ROOT$CONFIG"
    if [ -f "$target" ] && [ "$FORCE_CONFIG" -eq 0 ]; then
        say "kept $CONFIG (--force-config replaces it)"
        return
    fi
    mkdir -p "$(dirname "$target")"
    # One device per Pi: the screen always listens where the kiosk browser looks.
    sed -e "s/^store_id = .*/store_id = \"$STORE\"/" \
        -e "s/^device_id = .*/device_id = \"$DEVICE\"/" \
        -e "s/^listen = .*/listen = \"127.0.0.1:8080\"/" \
        "$CHECKOUT/examples/$ROLE.toml" > "$target.new"
    "$ROOT$VENV/bin/python" -c 'import sys; from common.config import load_edge; load_edge(sys.argv[1], env={})' \
        "$target.new" || { rm -f "$target.new"; die "the generated config does not load"; }
    chown "0:$(awk -F: '$1 == "touchpoint" {print $3}' "$ROOT/etc/group")" "$target.new"
    chmod 0640 "$target.new"  # it holds the staff PIN and the MQTT password
    mv "$target.new" "$target"
    say "wrote $CONFIG for $ROLE $DEVICE in store $STORE; set [mqtt] url, username, password and ack_key there"
}

install_units() {
    mkdir -p "$ROOT/etc/systemd/system" "$ROOT/etc/modules-load.d"
    local unit
    for unit in "${UNITS[@]}"; do
        install -m 0644 "$CHECKOUT/systemd/$unit" "$ROOT/etc/systemd/system/$unit"
    done
    # Loaded at boot so that DeviceAllow=char-ttyUSB/char-ttyACM resolve when the edge starts.
    printf 'usbserial\ncdc_acm\n' > "$ROOT/etc/modules-load.d/touchpoint.conf"
    [ "$BROWSER_UNIT" -eq 0 ] || browser_drop_in
}

start_units() {
    [ "$RUN_SYSTEMCTL" -eq 1 ] || { say "units installed; not enabled (--no-systemctl)"; return; }
    if [ -n "$ROOT" ]; then
        "$SYSTEMCTL" --root="$ROOT" --quiet enable "${UNITS[@]}"
        say "units enabled below $ROOT"
        return
    fi
    "$SYSTEMCTL" daemon-reload
    "$SYSTEMCTL" --quiet enable "${UNITS[@]}"
    "$SYSTEMCTL" restart "${UNITS[@]}"
    if [ "$BROWSER_UNIT" -eq 1 ] && [ "$("$SYSTEMCTL" get-default 2>/dev/null)" = graphical.target ]; then
        say "warning: a desktop owns the screen; for the kiosk browser boot to the console:" \
            "sudo raspi-config nonint do_boot_behaviour B1 && sudo reboot"
    fi
    say "running: ${UNITS[*]}; check with: sudo -u touchpoint $VENV/bin/touchpoint doctor --config $CONFIG"
}

ensure_user touchpoint /var/lib/touchpoint dialout video
if [ "$BROWSER_UNIT" -eq 1 ]; then
    ensure_user touchpoint-kiosk /var/lib/touchpoint-kiosk video render input
    install_browser_packages
fi
install_code
write_config
install_units
start_units
