"""The edge Flask app: shopper, mirror and staff screens, the JSON API and the event stream."""

from kiosk.app import create_app, shutdown

__all__ = ["create_app", "shutdown"]
