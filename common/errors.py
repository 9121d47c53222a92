"""The root of every error Touchpoint raises on purpose."""

from __future__ import annotations


class TouchpointError(Exception):
    """Base class: catch this to catch every deliberate Touchpoint error."""


class ConfigError(TouchpointError, ValueError):
    """A configuration key is missing, unknown or has a value that is not allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(f"config key {key!r}: got {value!r}; allowed: {allowed}")
