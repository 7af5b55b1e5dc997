"""Test-session setup: eight simulated CPU devices, so sharded code paths run everywhere.

The flag must be set before JAX initialises its backends, hence at import time of this file.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = f"{_flags} --xla_force_host_platform_device_count=8".strip()
