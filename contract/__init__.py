"""What the edge and HQ both speak: the CloudEvents envelope and its validation, the MQTT topics
with their ack and status payloads, and the catalogue format. Imports only ``common``."""
