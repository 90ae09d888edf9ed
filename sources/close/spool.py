"""Report units' finished batches, kept until their unit is complete.

A report unit (one report of one org and segment) is loaded whole or not at all: Close may
refuse it half-way (a plan-gated report, retries spent), and then none of its rows may reach
the load package. Its batches wait in memory while all spools of the process together hold
at most ``SPOOL_MEMORY_BYTES`` of Arrow data (small: a 120-day load already spools, so a
longer one holds no more), the rest in one anonymous temporary file per report: Arrow tables
as Arrow IPC streams (a copy out and a zero-copy read back; pickle cost a third more), dict
rows pickled. So a long backfill keeps memory flat and many orgs do not hold many open files.
"""

from __future__ import annotations

import pickle
import tempfile
import threading
from typing import IO, Any, Dict, Hashable, Iterator, List, Optional, Tuple, Union

import pyarrow as pa
import pyarrow.ipc as ipc

SPOOL_MEMORY_BYTES = 4_000_000
"""Most bytes of Arrow batches all spools of the process keep in memory."""

_ARROW, _PICKLED = "arrow", "pickled"

Entry = Union[Tuple[str, pa.Table], Tuple[str, str, int, int]]
"""``(table, batch)`` in memory, or ``(table, kind, offset, length)`` in the file."""


class _Budget:
    """Bytes of memory the spools of this process may still use (shared across threads)."""

    def __init__(self, total: int) -> None:
        self.free = total
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if size > self.free:
                return False
            self.free -= size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.free += size


BUDGET = _Budget(SPOOL_MEMORY_BYTES)


class Spool:
    """Batches appended per key (a unit) while a report runs, read back once per key.

    Used from one thread (the resource's generator); the memory budget is shared.
    """

    def __init__(self, budget: _Budget = BUDGET) -> None:
        self._budget = budget
        self._file: Optional[IO[bytes]] = None
        self._entries: Dict[Hashable, List[Entry]] = {}
        self._held = 0

    def add(self, key: Hashable, table: str, part: Any) -> None:
        """Appends one batch of ``table`` (an Arrow table or a list of dict rows) for
        ``key``."""
        entries = self._entries.setdefault(key, [])
        if isinstance(part, pa.Table):
            size = part.nbytes
            if self._budget.take(size):
                self._held += size
                entries.append((table, part))
                return
        file = self._open()
        file.seek(0, 2)
        offset = file.tell()
        if isinstance(part, pa.Table):
            with ipc.new_stream(pa.PythonFile(file, mode="w"), part.schema) as writer:
                writer.write_table(part)
            kind = _ARROW
        else:
            pickle.dump(part, file, protocol=pickle.HIGHEST_PROTOCOL)
            kind = _PICKLED
        entries.append((table, kind, offset, file.tell() - offset))

    def drain(self, key: Hashable) -> Iterator[Tuple[str, Any]]:
        """Yields ``key``'s ``(table, batch)`` in order and forgets them."""
        for entry in self._entries.pop(key, []):
            if len(entry) == 2:
                table, part = entry
                self._release(part)
                yield table, part
                continue
            table, kind, offset, length = entry
            assert self._file is not None
            self._file.seek(offset)
            data = self._file.read(length)
            if kind == _ARROW:
                yield table, ipc.open_stream(pa.py_buffer(data)).read_all()
            else:
                yield table, pickle.loads(data)

    def discard(self, key: Hashable) -> None:
        """Forgets ``key``'s batches (its unit failed)."""
        for entry in self._entries.pop(key, []):
            if len(entry) == 2:
                self._release(entry[1])

    def close(self) -> None:
        """Deletes the file and gives the memory budget back."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._entries.clear()
        self._budget.give(self._held)
        self._held = 0

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="close-spool-")  # noqa: SIM115 - kept open
        return self._file

    def _release(self, part: pa.Table) -> None:
        size = part.nbytes
        self._held -= size
        self._budget.give(size)
