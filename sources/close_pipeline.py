"""Close CRM's reporting API into a warehouse: the example pipeline of the ``close`` source.

``dlt init close duckdb --location <this repository>`` copies this script and the
``close/`` source into your dlt project. Set the API key (``SOURCES__CLOSE__API_KEY`` or
``api_key`` under ``[sources.close]`` in ``.dlt/secrets.toml``), then ``python close_pipeline.py``.
Every run is incremental: only new days (plus ``lookback_days``) are read.
"""

import dlt
from close import close_source


def load_all_reports() -> None:
    """Every report and dimension table: the last 90 days on the first run, then incremental."""
    pipeline = dlt.pipeline(pipeline_name="close", destination="duckdb", dataset_name="close_raw")
    load_info = pipeline.run(close_source(), loader_file_format="parquet")
    print(load_info)


def backfill_activity(start_date: str = "2026-01-01", end_date: str = "2026-02-01") -> None:
    """Activity per rep per day for a past range ``[start_date, end_date)``; a backfill neither
    reads nor moves the incremental state."""
    pipeline = dlt.pipeline(pipeline_name="close", destination="duckdb", dataset_name="close_raw")
    source = close_source(start_date=start_date, end_date=end_date)
    load_info = pipeline.run(source.with_resources("activity_by_user", "users"))
    print(load_info)


if __name__ == "__main__":
    load_all_reports()
