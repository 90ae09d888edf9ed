"""Report units' finished batches, kept on disk until their unit is complete.

A report unit (one report of one org and segment) is loaded whole or not at all: Close may
refuse it half-way (a plan-gated report, retries spent), and then none of its rows may reach
the load package. Its batches wait in one anonymous temporary file per report (pickled: Arrow
tables serialize as Arrow IPC), not in memory, so a long backfill keeps memory flat and many
orgs do not hold many open files.
"""

from __future__ import annotations

import pickle
import tempfile
from typing import IO, Any, Dict, Hashable, Iterator, List, Optional


class Spool:
    """Items appended per key (a unit) while a report runs, read back once per key.

    Used from one thread (the resource's generator).
    """

    def __init__(self) -> None:
        self._file: Optional[IO[bytes]] = None
        self._offsets: Dict[Hashable, List[int]] = {}

    def add(self, key: Hashable, item: Any) -> None:
        """Appends one item (an Arrow table or a list of dict rows) for ``key``."""
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="close-spool-")  # noqa: SIM115 - kept open
        self._file.seek(0, 2)
        self._offsets.setdefault(key, []).append(self._file.tell())
        pickle.dump(item, self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def drain(self, key: Hashable) -> Iterator[Any]:
        """Yields ``key``'s items in order and forgets them."""
        for offset in self._offsets.pop(key, []):
            assert self._file is not None
            self._file.seek(offset)
            yield pickle.load(self._file)

    def discard(self, key: Hashable) -> None:
        """Forgets ``key``'s items (its unit failed)."""
        self._offsets.pop(key, None)

    def close(self) -> None:
        """Deletes the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._offsets.clear()
