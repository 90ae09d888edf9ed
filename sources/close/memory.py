"""Keeping the loader's memory flat: where freed memory goes, and handing it back.

A long backfill allocates and frees the same few megabytes thousands of times, in a dozen
threads. Two allocators kept what was freed, so the process grew with the days read although
the data in flight did not (measured on a 729-day large-org load, ``docs/decisions.md``):

- pyarrow's default pool (mimalloc) keeps freed pages per thread, and the worker threads
  that build the Arrow tables never ask for them back (``release_unused`` only collects the
  calling thread's heap): ~110 MB on a 365-day load. pyarrow picks its pool once, when it
  is imported, from ``ARROW_DEFAULT_MEMORY_POOL``, which importing ``close_reports`` sets to
  ``system`` unless it is set. If pyarrow came first, ``configure`` makes the system pool
  the default of pyarrow's Python calls (``pa.set_memory_pool``; C++ internals such as the
  Parquet writer keep the first pool).
- glibc malloc gives each thread an arena (up to 8 per core) and, after a large block is
  freed, raises its mmap threshold so later large blocks stay in the arenas: 60-100 MB of
  free memory held after extract, and DuckDB's blocks after the load. ``configure`` caps
  the arenas at two (``M_ARENA_MAX``) and fixes the threshold at glibc's default of 128 KiB
  (``M_MMAP_THRESHOLD``: larger blocks are mapped and unmapped, never kept), unless
  ``MALLOC_ARENA_MAX`` / ``MALLOC_MMAP_THRESHOLD_`` say otherwise; ``release`` returns free
  memory (``malloc_trim``) when a report unit is handed on and after extract and load.

Both are process-wide and apply once, the first time a source is made; on other C libraries
only pyarrow's pool changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from typing import Any, Optional

import pyarrow as pa

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
"""``mallopt`` parameters of glibc's ``malloc.h``."""
ARENA_MAX = 2
MMAP_THRESHOLD = 128 * 1024

_lock = threading.Lock()
_configured = False
_libc: Optional[Any] = None


def _glibc() -> Optional[Any]:
    """glibc, or None elsewhere (musl, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


def configure() -> None:
    """Sets the allocators up for a long load, once per process (see the module docstring)."""
    global _configured, _libc
    with _lock:
        if _configured:
            return
        _configured = True
        chosen = os.environ.get("ARROW_DEFAULT_MEMORY_POOL")
        if chosen in (None, "", "system") and pa.default_memory_pool().backend_name != "system":
            pa.set_memory_pool(pa.system_memory_pool())
        _libc = _glibc()
        if _libc is None:
            return
        if not os.environ.get("MALLOC_ARENA_MAX"):
            _libc.mallopt(M_ARENA_MAX, ARENA_MAX)
        if not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
            _libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def release() -> None:
    """Hands memory freed so far back to the system (pyarrow's pool, then malloc's)."""
    pa.default_memory_pool().release_unused()
    if _libc is not None:
        _libc.malloc_trim(0)
