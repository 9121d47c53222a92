"""The foundation every part of Touchpoint may import: errors, configuration, logging, systemd
notification, retry backoff and the MQTT client adapter. It imports nothing else of the project."""
