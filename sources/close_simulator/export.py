"""The event log as plain tables, independent of the report code.

``event_tables(org)`` gives one ``pyarrow.Table`` per entity / event type with public ids and
naive UTC timestamps (``TIMESTAMP`` in DuckDB); ``export_events`` writes them as Parquet files
and ``events_to_duckdb`` as DuckDB tables, so tests and dbt checks can compute expected report
numbers with plain SQL.

Tables: ``organization``, ``users``, ``groups``, ``group_members``, ``saved_searches``,
``lead_statuses``, ``pipelines``, ``opportunity_statuses``, ``templates``, ``sequences``,
``leads``, ``lead_status_changes``, ``opportunities``, ``opportunity_status_changes``,
``calls``, ``emails``, ``email_opens``, ``sms``.

The log holds every stored event, also those after the simulator's now (an org generated
with ``horizon_days``): each row carries the instant it happened (``created_at``,
``changed_at``, ``replied_at``, ``opened_at``), so the truth as of a given now is the rows at
or before it. ``as_of=<instant>`` exports exactly that view: rows after it are left out and
a reply after it is not there yet (``replied_at`` null, ``has_reply`` false).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .org import (
    ANNUALIZE,
    CALL_DIRECTIONS,
    CALL_TYPES,
    EMAIL_DIRECTIONS,
    INDUSTRIES,
    LEAD_SOURCES,
    NO_VALUE,
    PLANS,
    SEND_TYPES,
    SMS_DIRECTIONS,
    VALUE_PERIODS,
    Org,
)
from .timeutil import Instant, to_epoch


def _timestamps(values: Sequence[int] | array[int], missing: int | None = None) -> pa.Array:
    """Epoch seconds -> ``timestamp[us]`` (naive UTC); ``missing`` marks nulls."""
    ints = pa.array(values, type=pa.int64())
    if missing is not None:
        ints = pc.if_else(pc.equal(ints, missing), pa.scalar(None, pa.int64()), ints)
    return pc.multiply(ints, 1_000_000).cast(pa.timestamp("us"))


def _lookup(names: Sequence[str | None], codes: array[int] | Sequence[int]) -> pa.Array:
    """Codes -> strings (``-1`` -> null)."""
    table = list(names)
    return pa.array([table[c] if c >= 0 else None for c in codes], type=pa.string())


def _ids(make: Callable[[int], str], count: int) -> pa.Array:
    return pa.array([make(i) for i in range(count)], type=pa.string())


def _nullable(values: Sequence[int] | array[int]) -> pa.Array:
    return pa.array([None if v == NO_VALUE else v for v in values], pa.int64())


def _visible(table: pa.Table, column: str, until: int | None) -> pa.Table:
    """Rows of ``table`` whose ``column`` (a timestamp) is before ``until`` (all if None)."""
    if until is None:
        return table
    bound = pa.scalar(until * 1_000_000, pa.int64()).cast(pa.timestamp("us"))
    return table.filter(pc.less(table[column], bound))


def event_tables(org: Org, as_of: Instant | None = None) -> dict[str, pa.Table]:
    """Every entity and event table of ``org`` as Arrow tables (see the module docstring).

    Args:
        org: The organization.
        as_of: Keep only what had happened at that instant (rows at or before it; replies
            after it removed); None = every stored event.
    """
    until = None if as_of is None else to_epoch(as_of) + 1
    user_ids = [u.id for u in org.users]
    lead_status_ids = [s.id for s in org.lead_statuses]
    opp_status_ids = [s.id for s in org.opportunity_statuses]
    template_ids: list[str | None] = [t.id for t in org.templates]
    sequence_ids: list[str | None] = [s.id for s in org.sequences]
    tables: dict[str, pa.Table] = {}

    tables["organization"] = pa.table(
        {
            "id": [org.id],
            "name": [org.name],
            "seed": [org.seed],
            "scale": [org.scale],
            "anchor_date": pa.array([org.anchor_date], type=pa.date32()),
            "date_created": _timestamps([org.date_created]),
            "history_start": _timestamps([org.history_start]),
            "history_end": _timestamps([org.history_end]),
            "horizon_days": [org.horizon_days],
            "generated_until": _timestamps([org.generated_until]),
            "late_wins": pa.array([org.late_wins], pa.float64()),
            "as_of": _timestamps([-1 if until is None else until - 1], -1),
        }
    )
    tables["users"] = pa.table(
        {
            "id": user_ids,
            "first_name": [u.first_name for u in org.users],
            "last_name": [u.last_name for u in org.users],
            "full_name": [u.full_name for u in org.users],
            "email": [u.email for u in org.users],
            "is_active": [u.is_active for u in org.users],
            "date_created": _timestamps([u.date_created for u in org.users]),
            "deactivated_at": _timestamps([u.deactivated_at or -1 for u in org.users], -1),
            "utc_offset_hours": pa.array([u.utc_offset_hours for u in org.users], pa.float64()),
        }
    )
    tables["groups"] = pa.table(
        {"id": [g.id for g in org.groups], "name": [g.name for g in org.groups]}
    )
    tables["group_members"] = pa.table(
        {
            "group_id": pa.array([g.id for g in org.groups for _ in g.member_ids], pa.string()),
            "user_id": pa.array([m for g in org.groups for m in g.member_ids], pa.string()),
        }
    )
    tables["saved_searches"] = pa.table(
        {
            "id": [s.id for s in org.saved_searches],
            "name": [s.name for s in org.saved_searches],
            "field": [s.field for s in org.saved_searches],
            "value": [s.value for s in org.saved_searches],
            "user_id": pa.array([s.user_id for s in org.saved_searches], pa.string()),
            "is_shared": [s.is_shared for s in org.saved_searches],
        }
    )
    tables["lead_statuses"] = pa.table(
        {
            "id": lead_status_ids,
            "label": [s.label for s in org.lead_statuses],
            "is_deleted": [s.is_deleted for s in org.lead_statuses],
            "deleted_at": _timestamps([s.deleted_at or -1 for s in org.lead_statuses], -1),
            "sort_order": list(range(len(org.lead_statuses))),
        }
    )
    tables["pipelines"] = pa.table(
        {
            "id": [p.id for p in org.pipelines],
            "name": [p.name for p in org.pipelines],
            "sort_order": list(range(len(org.pipelines))),
        }
    )
    stage_index: list[int | None] = []
    sort_order: list[int] = []
    for status in org.opportunity_statuses:
        pipeline = org.pipelines[org.pipeline_index(status.pipeline_id)]
        position = pipeline.status_ids.index(status.id)
        sort_order.append(position)
        stage_index.append(None if status.type == "lost" else position)
    tables["opportunity_statuses"] = pa.table(
        {
            "id": opp_status_ids,
            "label": [s.label for s in org.opportunity_statuses],
            "type": [s.type for s in org.opportunity_statuses],
            "pipeline_id": [s.pipeline_id for s in org.opportunity_statuses],
            "sort_order": sort_order,
            "stage_index": pa.array(stage_index, pa.int64()),
        }
    )
    tables["templates"] = pa.table(
        {
            "id": [t.id for t in org.templates],
            "name": [t.name for t in org.templates],
            "is_shared": [t.is_shared for t in org.templates],
            "user_id": [t.user_id for t in org.templates],
        }
    )
    tables["sequences"] = pa.table(
        {"id": [s.id for s in org.sequences], "name": [s.name for s in org.sequences]}
    )

    leads = org.leads
    tables["leads"] = pa.table(
        {
            "id": _ids(org.lead_id, len(leads)),
            "created_at": _timestamps(leads.created_at),
            "created_by": _lookup(user_ids, leads.created_by),
            "original_status_id": _lookup(lead_status_ids, leads.status),
            "source": _lookup(LEAD_SOURCES, leads.source),
            "industry": _lookup(INDUSTRIES, leads.industry),
            "custom_mrr": _nullable(leads.mrr),
            "custom_seats": _nullable(leads.seats),
            "custom_plan": _lookup(PLANS, leads.plan),
            "custom_renewal_date": pa.array(
                [None if d == NO_VALUE else d for d in leads.renewal_day], pa.int32()
            ).cast(pa.date32()),
        }
    )
    changes = org.lead_status_changes
    tables["lead_status_changes"] = pa.table(
        {
            "lead_id": pa.array([org.lead_id(o) for o in changes.obj], pa.string()),
            "changed_at": _timestamps(changes.at),
            "user_id": _lookup(user_ids, changes.user),
            "old_status_id": _lookup(lead_status_ids, changes.old),
            "new_status_id": _lookup(lead_status_ids, changes.new),
        }
    )
    opps = org.opportunities
    tables["opportunities"] = pa.table(
        {
            "id": _ids(org.opportunity_id, len(opps)),
            "lead_id": pa.array([org.lead_id(x) for x in opps.lead], pa.string()),
            "pipeline_id": _lookup([p.id for p in org.pipelines], opps.pipeline),
            "created_at": _timestamps(opps.created_at),
            "created_by": _lookup(user_ids, opps.created_by),
            "user_id": _lookup(user_ids, opps.user),
            "value": pa.array(opps.value, pa.int64()),
            "value_period": _lookup(VALUE_PERIODS, opps.period),
            "annualized_value": pa.array(
                [v * ANNUALIZE[p] for v, p in zip(opps.value, opps.period, strict=True)],
                pa.int64(),
            ),
            "original_status_id": _lookup(opp_status_ids, opps.status),
        }
    )
    opp_changes = org.opportunity_status_changes
    opp_types = [s.type for s in org.opportunity_statuses]
    tables["opportunity_status_changes"] = pa.table(
        {
            "opportunity_id": pa.array(
                [org.opportunity_id(o) for o in opp_changes.obj], pa.string()
            ),
            "changed_at": _timestamps(opp_changes.at),
            "user_id": _lookup(user_ids, opp_changes.user),
            "old_status_id": _lookup(opp_status_ids, opp_changes.old),
            "new_status_id": _lookup(opp_status_ids, opp_changes.new),
            "new_status_type": _lookup(opp_types, opp_changes.new),
            "date_won": _timestamps(
                [
                    e if opp_types[n] == "won" else -1
                    for e, n in zip(opp_changes.effective, opp_changes.new, strict=True)
                ],
                -1,
            ),
        }
    )
    calls = org.calls
    tables["calls"] = pa.table(
        {
            "id": _ids(lambda i: org.activity_id("call", i), len(calls)),
            "lead_id": pa.array([org.lead_id(x) for x in calls.lead], pa.string()),
            "user_id": _lookup(user_ids, calls.user),
            "created_at": _timestamps(calls.at),
            "direction": _lookup(CALL_DIRECTIONS, calls.direction),
            "call_type": _lookup(CALL_TYPES, calls.kind),
            "duration": pa.array(calls.duration, pa.int64()),
        }
    )
    emails = org.emails
    send_types: list[str | None] = [None, *SEND_TYPES[1:]]
    tables["emails"] = pa.table(
        {
            "id": _ids(lambda i: org.activity_id("email", i), len(emails)),
            "lead_id": pa.array([org.lead_id(x) for x in emails.lead], pa.string()),
            "user_id": _lookup(user_ids, emails.user),
            "created_at": _timestamps(emails.at),
            "direction": _lookup(EMAIL_DIRECTIONS, emails.direction),
            "send_type": _lookup(send_types, emails.send_type),
            "template_id": _lookup(template_ids, emails.template),
            "sequence_id": _lookup(sequence_ids, emails.sequence),
            "has_reply": pa.array([r >= 0 for r in emails.replied_at], pa.bool_()),
            "replied_at": _timestamps(emails.replied_at, -1),
        }
    )
    opens = org.email_opens
    tables["email_opens"] = pa.table(
        {
            "email_id": pa.array([org.activity_id("email", e) for e in opens.email], pa.string()),
            "user_id": _lookup(user_ids, [emails.user[e] for e in opens.email]),
            "opened_at": _timestamps(opens.at),
        }
    )
    sms = org.sms
    tables["sms"] = pa.table(
        {
            "id": _ids(lambda i: org.activity_id("sms", i), len(sms)),
            "lead_id": pa.array([org.lead_id(x) for x in sms.lead], pa.string()),
            "user_id": _lookup(user_ids, sms.user),
            "created_at": _timestamps(sms.at),
            "direction": _lookup(SMS_DIRECTIONS, sms.direction),
        }
    )
    if until is not None:
        for name, column in (
            ("leads", "created_at"),
            ("lead_status_changes", "changed_at"),
            ("opportunities", "created_at"),
            ("opportunity_status_changes", "changed_at"),
            ("calls", "created_at"),
            ("emails", "created_at"),
            ("email_opens", "opened_at"),
            ("sms", "created_at"),
        ):
            tables[name] = _visible(tables[name], column, until)
        emails_t = tables["emails"]
        bound = pa.scalar(until * 1_000_000, pa.int64()).cast(pa.timestamp("us"))
        later = pc.fill_null(pc.greater_equal(emails_t["replied_at"], bound), False)
        null_ts = pa.scalar(None, pa.timestamp("us"))
        emails_t = emails_t.set_column(
            emails_t.schema.get_field_index("replied_at"),
            "replied_at",
            pc.if_else(later, null_ts, emails_t["replied_at"]),
        )
        emails_t = emails_t.set_column(
            emails_t.schema.get_field_index("has_reply"),
            "has_reply",
            pc.and_(emails_t["has_reply"], pc.invert(later)),
        )
        tables["emails"] = emails_t
    return tables


def export_events(org: Org, path: str | Path, *, as_of: Instant | None = None) -> dict[str, Path]:
    """Writes every table of ``event_tables(org, as_of)`` as ``<path>/<table>.parquet``.

    Returns:
        Table name -> file written.
    """
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, table in event_tables(org, as_of).items():
        target = directory / f"{name}.parquet"
        pq.write_table(table, target)
        written[name] = target
    return written


def events_to_duckdb(
    org: Org, con_or_path: Any, schema: str = "close_sim", *, as_of: Instant | None = None
) -> dict[str, int]:
    """Writes every table of ``event_tables(org, as_of)`` into DuckDB as
    ``<schema>.<table>`` (replaced).

    Args:
        org: The organization.
        con_or_path: A ``duckdb`` connection, or a database file path (opened and closed).
        schema: Target schema (created if missing).
        as_of: Only what had happened at that instant (see ``event_tables``).

    Returns:
        Table name -> row count.
    """
    import duckdb

    own = not hasattr(con_or_path, "execute")
    con = duckdb.connect(str(con_or_path)) if own else con_or_path
    counts: dict[str, int] = {}
    try:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for name, table in event_tables(org, as_of).items():
            view = f"__close_sim_{name}"
            con.register(view, table)
            try:
                con.execute(f'CREATE OR REPLACE TABLE "{schema}"."{name}" AS SELECT * FROM {view}')
            finally:
                con.unregister(view)
            counts[name] = table.num_rows
    finally:
        if own:
            con.close()
    return counts
