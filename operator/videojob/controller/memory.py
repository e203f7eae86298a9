"""The operator process and glibc's allocator (each a no-op where the C library is not glibc, e.g. musl).

CPython hands every block over 512 bytes to the C allocator: the JSON of watch events and list pages, aiohttp's
buffers, the tables of the index's dicts as they grow. glibc gives freed memory back to the system only from the
top of a heap, so a burst of 10,000 VideoJobs leaves holes that count in the RSS until something fills them (about
6 MB measured after a burst, freed by one `malloc_trim` in 1 ms).
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Callable

M_ARENA_MAX = -8  # mallopt parameter, <malloc.h>


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 - glibc has both; musl has neither
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas before any thread starts. By default every thread that allocates (the API
    worker pools, Kopf's executor) may get an arena of its own, and the JSON of watch events and lists spread
    over many arenas keeps the process's memory high long after it is freed (the same as MALLOC_ARENA_MAX=2)."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, arenas)


def malloc_trim() -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)`: every free page of every arena back to the system (None without glibc)."""
    libc = _glibc()
    return None if libc is None else lambda: libc.malloc_trim(0)


class HeapTrimmer:
    """Calls `trim` after a pass, at most every `interval` seconds: the cost (about 1 ms for a heap of 150 MB) is
    paid a few times a minute, not after each of the many passes of a burst."""

    def __init__(
        self,
        trim: Callable[[], object] | None,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.trim = trim
        self.interval = interval
        self.clock = clock
        self.last = -float("inf")

    def after_pass(self) -> None:
        if self.trim is None:
            return
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self.trim()
