"""A report unit's finished batches, kept on disk until the unit is complete.

A report unit (one report of one org and segment) is loaded whole or not at all: Close may
refuse it half-way (a plan-gated report, retries spent), and then none of its rows may reach
the load package. The batches wait in an anonymous temporary file (pickled: Arrow tables
serialize as Arrow IPC) rather than in memory, so a long backfill keeps memory flat.
"""

from __future__ import annotations

import pickle
import tempfile
from typing import IO, Any, Iterator, Optional


class Spool:
    """Items appended while a unit runs, read back once when it is complete."""

    def __init__(self) -> None:
        self._file: Optional[IO[bytes]] = None
        self.count = 0

    def add(self, item: Any) -> None:
        """Appends one item (an Arrow table or a list of dict rows)."""
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="close-spool-")  # noqa: SIM115 - kept open
        pickle.dump(item, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += 1

    def drain(self) -> Iterator[Any]:
        """Yields every item in order, then deletes the file."""
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            file.seek(0)
            for _ in range(self.count):
                yield pickle.load(file)
        finally:
            file.close()
            self.count = 0

    def discard(self) -> None:
        """Drops everything appended (the unit failed)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.count = 0
