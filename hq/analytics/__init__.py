"""The core applied to what storage returns: journeys, reports, persons,
erasure. Reads and writes only through ``hq.storage``'s named methods."""
