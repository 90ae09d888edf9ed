"""One load of the Close source with its run ledger: extract, then the ledger, then normalize
and load both packages in the same load step.

dlt's ``pipeline.run`` would do extract + normalize + load of the data only. Here the ledger
(``close_raw.run_ledger``: what each report unit read, requested and whether it loaded) is
extracted right after the data, with the data package's load id as ``run_id``, so it lands
in the same load step; when the extract fails, the ledger still lands and names the failure.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

import dlt

from close_reports.failures import interrupted
from close_reports.source.ledger import RunLog, ledger_resource
from close_reports.source.migrate import add_segment_column


def load_with_ledger(
    pipeline: dlt.Pipeline,
    source: Any,
    run_log: RunLog,
    **options: Any,
) -> Dict[str, float]:
    """Extracts ``source``, then its ledger, then normalizes and loads everything.

    ``options`` go to ``pipeline.extract`` (``loader_file_format``, ``table_format``,
    ``refresh``: the ledger is extracted without ``refresh``).

    Returns:
        Seconds per step (extract, normalize, load).

    Raises:
        Whatever the extract raised (after the ledger is loaded), or the load's failure.
    """
    seconds: Dict[str, float] = {}
    started = time.monotonic()
    if pipeline.config.restore_from_destination:
        pipeline.sync_destination()  # as pipeline.run does: state and schema from the destination
    add_segment_column(pipeline)  # tables of an earlier version: segment = '_all'

    failure: Optional[BaseException] = None
    run_id = f"{time.time():.6f}"
    try:
        info = pipeline.extract(source, **options)
        run_id = info.loads_ids[-1] if info.loads_ids else run_id
    except Exception as exc:  # the ledger still lands, then the error goes on
        if interrupted(exc) is not None:
            raise  # Ctrl-C: stop now (dlt wraps the KeyboardInterrupt in its step error)
        failure = exc
    seconds["extract"] = time.monotonic() - started
    if run_log.entries:
        ledger_options = {k: v for k, v in options.items() if k != "refresh"}
        pipeline.extract(ledger_resource(run_log, run_id), **ledger_options)
    step = time.monotonic()
    pipeline.normalize()
    seconds["normalize"] = time.monotonic() - step
    step = time.monotonic()
    pipeline.load()
    seconds["load"] = time.monotonic() - step
    if failure is not None:
        raise failure
    return seconds
