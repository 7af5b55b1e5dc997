"""Freed host memory goes back to the system after the loop's bursts (training/host_memory.py)."""

import ctypes
import ctypes.util
import pathlib

import pytest

from genimg_jax.training.host_memory import release_freed_memory

CHUNK, COUNT, KEEP_EVERY = 4096, 40_000, 64


def rss_bytes() -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(not ctypes.util.find_library("c"), reason="needs the C library")
def test_pages_freed_between_live_allocations_are_returned():
    """160 MiB in 4 KiB blocks, all freed but every 64th: the survivors pin the heap, so free() alone keeps the
    pages (the RSS creep seen over long runs); release_freed_memory hands them back."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(CHUNK) for _ in range(COUNT)]
    for block in blocks:
        ctypes.memset(block, 1, CHUNK)
    for index, block in enumerate(blocks):
        if index % KEEP_EVERY:
            libc.free(block)
    before = rss_bytes()
    release_freed_memory()
    after = rss_bytes()
    for block in blocks[::KEEP_EVERY]:
        libc.free(block)
    assert before - after > 0.5 * CHUNK * COUNT, (before - after) / 2**20
