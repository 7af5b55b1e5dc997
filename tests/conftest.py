"""Test-session setup: eight simulated CPU devices, so sharded code paths run everywhere, and one persistent
compilation cache for the session, so that the many tiny runs (in this process and in the single-process runs
that tests start) compile each distinct computation once.

The device flag must be set before JAX initialises its backends, hence at import time of this file.
"""

import os

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = f"{_flags} --xla_force_host_platform_device_count=8".strip()

# Every computation is cached, however fast it compiled: the tiny test runs compile faster than JAX's default
# threshold of 1 s.
_CACHE_SETTINGS = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
)


@pytest.fixture(scope="session", autouse=True)
def _session_compilation_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The cache lives in this session's temporary folder; subprocesses read its settings from the environment.
    An executable loaded from the cache is the one that was compiled, so results stay bit-identical."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    values = (str(tmp_path_factory.mktemp("jax_compilation_cache")), 0.0, -1)
    for name, value in zip(_CACHE_SETTINGS, values, strict=True):
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)
    compilation_cache.reset_cache()  # a computation compiled while collecting already decided "no cache"


@pytest.fixture
def uncached_subprocesses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Multi-process runs compile without the cache: with jax 0.10.2, processes that load their executables from
    it never set up their cross-process Gloo context (GetKeyValue of key cpu:gloo/... times out after 30 s)."""
    for name in _CACHE_SETTINGS:
        monkeypatch.delenv(name.upper(), raising=False)


LAST_STARTED = ".pytest_cache/last_started_test"


def pytest_runtest_logstart(nodeid: str, location: tuple) -> None:
    """Name the running test in a file, so that when a native crash (an abort in XLA or a C extension) takes the
    whole session down before pytest can report, `.ci/run` can still say which test it was."""
    os.makedirs(os.path.dirname(LAST_STARTED), exist_ok=True)
    with open(LAST_STARTED, "w") as file:
        file.write(nodeid + "\n")
