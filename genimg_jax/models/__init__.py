"""Flax linen networks: pure functions of their variables through ``init`` / ``apply``."""
