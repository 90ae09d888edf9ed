"""close-reports: the command line (``close-pipeline``) over the dlt source ``close_reports.source``
(``sources/close`` in the repository), the embedded Close ``close_reports.simulator`` and the
dbt project."""

import os as _os

# pyarrow's default pool (mimalloc) keeps the pages freed in each thread, and the loader's worker
# threads never hand them back: ~110 MB on a year-long backfill (docs/decisions.md, "Performance").
# pyarrow reads this once, when it is imported; set ARROW_DEFAULT_MEMORY_POOL to choose a pool.
_os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
