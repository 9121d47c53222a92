"""HQ on the broker: ingest workers (uplink in, acks out) and the downlink publisher."""
