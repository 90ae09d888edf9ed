"""Upgrading tables loaded by an earlier version before a load (no reload needed).

Report tables gained a ``segment`` key column (``'_all'`` for the unfiltered rows). dlt cannot
add a NOT NULL key column to a table that holds rows, and rows without it would never be
replaced by their window (the merge key includes ``segment``), so the column is added first,
with ``'_all'`` filled in for every existing row, in the dataset and its staging dataset.
"""

from __future__ import annotations

import contextlib
from typing import Any, List

from dlt.common import logger

from .settings import ALL_SEGMENT, REPORT_TABLES

SEGMENT_COLUMN = "segment"


def add_segment_column(pipeline: Any) -> List[str]:
    """Adds ``segment = '_all'`` to every report table of ``pipeline``'s destination that
    lacks it; returns the tables changed (``dataset.table``). A destination without SQL
    (filesystem) or not created yet is left alone."""
    if "filesystem" in str(getattr(pipeline.destination, "destination_type", "")):
        return []  # files: a table without the column is read with it null (upsert tables)
    try:
        sql_client = pipeline.sql_client()
    except Exception:  # noqa: BLE001 - no SQL client for this destination
        return []
    changed: List[str] = []
    with sql_client as client:
        for staging in (False, True):
            with client.with_staging_dataset() if staging else contextlib.nullcontext():
                changed += _add_to_dataset(client)
    if changed:
        logger.warning("Added segment = '_all' to %s", ", ".join(changed))
    return changed


def _add_to_dataset(client: Any) -> List[str]:
    changed = []
    schema_name = client.make_qualified_table_name_path(None, quote=False)[-1]
    for table in REPORT_TABLES:
        if not _has_table_without_segment(client, schema_name, table):
            continue
        name = client.make_qualified_table_name(table)
        column = client.escape_column_name(SEGMENT_COLUMN)
        client.execute_sql(
            f"ALTER TABLE {name} ADD COLUMN {column} VARCHAR DEFAULT '{ALL_SEGMENT}'"
        )
        client.execute_sql(f"UPDATE {name} SET {column} = '{ALL_SEGMENT}'")
        changed.append(f"{schema_name}.{table}")
    return changed


def _has_table_without_segment(client: Any, schema_name: str, table: str) -> bool:
    try:
        rows = client.execute_sql(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            schema_name,
            table,
        )
    except Exception:  # noqa: BLE001 - the dataset does not exist yet
        return False
    columns = {str(row[0]) for row in rows or []}
    return bool(columns) and SEGMENT_COLUMN not in columns
