"""The operator and glibc's allocator: free pages are given back after passes, not after each of a burst's."""

from __future__ import annotations

import ctypes
import sys

import pytest

from videojob.controller.memory import HeapTrimmer, malloc_trim


@pytest.mark.parametrize(
    ("passes_at", "trims_at"),
    [
        pytest.param([0.0], [0.0], id="the first pass trims"),
        pytest.param([0.0, 0.1, 2.0, 4.9], [0.0], id="not again within the interval"),
        pytest.param([0.0, 5.0, 5.1, 10.2], [0.0, 5.0, 10.2], id="again once it has passed"),
        pytest.param([3.0, 100.0], [3.0, 100.0], id="after a quiet time, at the next pass"),
    ],
)
def test_the_heap_is_trimmed_after_a_pass_at_most_every_interval(passes_at: list[float], trims_at: list[float]) -> None:
    clock = iter(passes_at)
    now = [0.0]
    trimmed: list[float] = []

    def tick() -> float:
        now[0] = next(clock)
        return now[0]

    trimmer = HeapTrimmer(lambda: trimmed.append(now[0]), interval=5.0, clock=tick)
    for _ in passes_at:
        trimmer.after_pass()
    assert trimmed == trims_at


def test_without_glibc_nothing_is_trimmed() -> None:
    HeapTrimmer(None).after_pass()  # no call, no error


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc is Linux's")
def test_on_glibc_malloc_trim_gives_freed_memory_back() -> None:
    """The real call: memory freed in the middle of the heap leaves the RSS only when trimmed."""
    trim = malloc_trim()
    assert trim is not None, "this machine's C library is glibc"
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    # 64 KiB blocks stay under the mmap threshold: they are carved from the heap, like the JSON of watch events.
    # Every other one is kept (like the index's objects between them): the freed ones are holes that cannot merge
    # with a neighbour or with the heap's top, so `free` alone cannot give them back.
    blocks = []
    for _ in range(1600):
        blocks.append(libc.malloc(64 * 1024))
        libc.memset(blocks[-1], 1, 64 * 1024)  # touched: resident
    holes, kept = blocks[0::2], blocks[1::2]
    before = _rss()
    for block in holes:
        libc.free(block)
    freed = _rss()
    assert trim() == 1, "malloc_trim says it released memory"
    after = _rss()
    for block in kept:
        libc.free(block)
    assert before - freed < 10 * 2**20, "freeing alone gives back little: the holes are below the top"
    assert freed - after > 40 * 2**20, f"trimmed {freed - after} bytes of the 50 MiB freed"


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")
