"""The run summary: tables and rows, requests, seconds per phase, where the data is."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import dlt

EXAMPLE_QUERIES = (  # relative ranges that hold loaded days whatever today is (never today)
    "select user_name, sum(calls_count) as calls, round(sum(calls_duration_minutes)) as "
    "talk_minutes from close_marts.fct_user_activity_daily where activity_date >= "
    "current_date - 7 group by 1 order by 2 desc",
    "select status_label, sum(count_entered) as entered, sum(count_left) as left_status "
    "from close_marts.fct_lead_status_daily where status_date >= current_date - 30 "
    "group by 1 order by 2 desc",
)

VARIANT_MARK = "__v_"
"""dlt names a column that received a value of another type ``<column>__v_<type>``."""


@dataclass
class RunSummary:
    """What one command did, printed at its end."""

    phases: Dict[str, float] = field(default_factory=dict)
    table_rows: Dict[str, int] = field(default_factory=dict)
    mart_rows: Dict[str, int] = field(default_factory=dict)
    requests: Dict[str, int] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    failed_reports: List[str] = field(default_factory=list)
    duckdb_path: Optional[str] = None
    dataset: str = "close_raw"

    def lines(self) -> List[str]:
        """The summary as printable lines."""
        out = ["", "Summary"]
        for title, counts in (
            (f"raw tables in {self.dataset} (rows):", self.table_rows),
            ("marts in close_marts (rows):", self.mart_rows),
        ):
            if counts:
                out.append(f"  {title}")
                width = max(len(t) for t in counts)
                out += [f"    {t:<{width}}  {n:>10,}" for t, n in sorted(counts.items())]
        if self.requests:
            r = self.requests
            out.append(
                f"  requests: {r.get('requests', 0)} made, {r.get('retries', 0)} retried, "
                f"{r.get('rate_limited', 0)} rate-limited (429), {r.get('failed', 0)} failed"
            )
        if self.phases:
            out.append("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.phases.items()))
        out += [f"  warning: {w}" for w in self.warnings]
        out += [f"  not loaded: {f}" for f in self.failed_reports]
        if self.duckdb_path:
            cli = duckdb_cli()
            out += [f"  DuckDB file: {self.duckdb_path}", "  try:"]
            if self.mart_rows:
                out += [f'    {cli} -readonly {self.duckdb_path} "{q}"' for q in EXAMPLE_QUERIES]
            else:
                out.append(
                    f'    {cli} -readonly {self.duckdb_path} "select table_name, estimated_size '
                    f"from duckdb_tables() where schema_name = '{self.dataset}' order by 1\""
                )
            if cli == "duckdb":
                out.append(
                    "    (no duckdb CLI next to this Python: pip install 'duckdb-cli<2', or "
                    f"python -c \"import duckdb; duckdb.connect('{self.duckdb_path}', "
                    "read_only=True).sql('select 42').show()\")"
                )
        return out


def duckdb_cli() -> str:
    """The DuckDB CLI installed next to this Python (``duckdb-cli``), else plain ``duckdb``."""
    here = Path(sys.executable).parent / "duckdb"
    return str(here) if here.is_file() else "duckdb"


def table_row_counts(pipeline: dlt.Pipeline) -> Dict[str, int]:
    """Rows in each data table of the pipeline's schema, read from the destination."""
    names = [str(t["name"]) for t in pipeline.default_schema.data_tables()]
    tables = [name for name in names if not name.startswith("_dlt")]
    counts: Dict[str, int] = {}
    with pipeline.sql_client() as client:
        for table in sorted(tables):
            name = client.make_qualified_table_name(table)
            try:
                rows = client.execute_sql(f"select count(*) from {name}")
            except Exception:  # a table of the schema that was never created (no data yet)
                continue
            counts[table] = int(rows[0][0]) if rows else 0
    return counts


def mart_row_counts(duckdb_path: str, schema: str = "close_marts") -> Dict[str, int]:
    """Rows in each table of the dbt marts schema of a DuckDB file."""
    import duckdb

    counts: Dict[str, int] = {}
    with duckdb.connect(duckdb_path, read_only=True) as con:
        tables = con.execute(
            "select table_name from information_schema.tables where table_schema = ?",
            [schema],
        ).fetchall()
        for (table,) in tables:
            counts[table] = con.execute(f'select count(*) from {schema}."{table}"').fetchall()[0][0]
    return counts


def variant_columns(pipeline: dlt.Pipeline) -> List[str]:
    """Columns dlt created because a field changed type (schema drift)."""
    found = []
    for table in pipeline.default_schema.data_tables():
        for column in table.get("columns", {}):
            if VARIANT_MARK in column:
                found.append(f"{table['name']}.{column}")
    return found


def drift_warnings(pipeline: dlt.Pipeline) -> List[str]:
    """One warning per variant column, saying which field changed type."""
    return [
        f"Close sent a value of another type for {column.split(VARIANT_MARK)[0]}: it was "
        f"loaded into {column} (schema drift; check the field in Close)"
        for column in variant_columns(pipeline)
    ]


def load_phase_seconds(pipeline: dlt.Pipeline) -> Dict[str, float]:
    """Seconds spent in extract, normalize and load by the last run."""
    trace = pipeline.last_trace
    phases: Dict[str, float] = {}
    if trace is None:
        return phases
    for step in trace.steps:
        if step.step in ("extract", "normalize", "load") and step.finished_at:
            phases[step.step] = (step.finished_at - step.started_at).total_seconds()
    return phases
