"""The core applied to what storage returns: journeys, reports, the identity graph kept current,
erasure. Reads and writes only through ``hq.storage``'s named methods."""
