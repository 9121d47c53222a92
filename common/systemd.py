"""systemd's notify protocol (``Type=notify``): readiness and watchdog pings.

A no-op when the process was not started by systemd (no ``NOTIFY_SOCKET``), so every service can
call it unconditionally.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send one sd_notify message such as ``READY=1``; returns whether systemd was there."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())
    return True


def ready(status: str = "") -> bool:
    """Tell systemd start-up is complete (and, optionally, a line for ``systemctl status``)."""
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def watchdog() -> bool:
    """Ping the watchdog; call it from the loop whose liveness it proves."""
    return notify("WATCHDOG=1")


def watchdog_interval_s() -> float | None:
    """Half of ``WatchdogSec`` (how often to ping), or None when no watchdog is configured."""
    usec = os.environ.get("WATCHDOG_USEC")
    return int(usec) / 2_000_000 if usec and usec.isdigit() else None


def stopping() -> bool:
    return notify("STOPPING=1")
