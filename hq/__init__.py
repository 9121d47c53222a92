"""Touchpoint HQ, in layers: ``core`` (pure), ``storage`` (all SQL), ``analytics`` (the core over
storage), ``mqtt`` and ``web`` (the two ways in and out); ``server`` runs them as ``touchpoint hq``."""
