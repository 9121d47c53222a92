"""``touchpoint demo``: the whole system on one machine (broker, HQ, a kiosk and a mirror, shoppers)."""

from __future__ import annotations

from touchpoint.demo.system import run

__all__ = ["run"]
