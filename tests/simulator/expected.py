"""Brute-force expected values computed from the EXPORTED event log (DuckDB / plain Python),
independently of the simulator's report code."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime

import duckdb

S = "close_sim"


def utc(ts: int) -> datetime:
    """Naive UTC datetime of epoch seconds (the exported timestamp type)."""
    return datetime.fromtimestamp(ts, tz=UTC).replace(tzinfo=None)


def local_midnight(day: date, offset_hours: float) -> int:
    """Epoch seconds of local midnight of ``day`` at a fixed UTC offset."""
    return int((datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())) - int(
        round(offset_hours * 3600)
    )


_CALL_FILTERS = {
    "calls.all.all": "true",
    "calls.inbound.all": "direction = 'inbound'",
    "calls.outbound.all": "direction = 'outbound'",
    "calls.outbound.regular": "direction = 'outbound' and call_type = 'regular'",
    "calls.outbound.external": "direction = 'outbound' and call_type = 'external'",
    "calls.outbound.power_dialer": "direction = 'outbound' and call_type = 'power_dialer'",
    "calls.outbound.predictive_dialer": (
        "direction = 'outbound' and call_type = 'predictive_dialer'"
    ),
}
_SENT_FILTERS = {
    "emails.sent.all.count": "true",
    "emails.sent.manual.count": "send_type = 'manual'",
    "emails.sent.bulk.count": "send_type = 'bulk'",
    "emails.sent.sequences.count": "send_type = 'sequence'",
    "emails.sent.sequences_with_reply.count": "send_type = 'sequence' and {reply}",
    "emails.sent.sequences_without_reply.count": "send_type = 'sequence' and not {reply}",
    "emails.sent.manual_with_reply.count": "send_type = 'manual' and {reply}",
    "emails.sent.bulk_with_reply.count": "send_type = 'bulk' and {reply}",
}


def sql_ts(moment: datetime | int) -> str:
    """A DuckDB timestamp literal of a naive UTC datetime or epoch seconds."""
    if isinstance(moment, int):
        moment = utc(moment)
    return f"timestamp '{moment.isoformat(sep=' ')}'"


def metric_sql(key: str, now: int | None = None) -> tuple[str, str]:
    """(SELECT of rows ``(user_id, ts, lead_id[, v])``, aggregate expression) for a metric,
    as of ``now`` (epoch seconds; only what had happened at or before it) when given."""
    seen = "true" if now is None else f"{{col}} <= {sql_ts(now)}"

    def upto(column: str) -> str:
        return seen.format(col=column)

    reply = (
        "has_reply" if now is None else f"(replied_at is not null and replied_at <= {sql_ts(now)})"
    )
    if key.startswith("calls."):
        prefix, agg = key.rsplit(".", 1)
        source = (
            f"select user_id, created_at as ts, lead_id, duration as v from {S}.calls "
            f"where {_CALL_FILTERS[prefix]} and {upto('created_at')}"
        )
        expr = {
            "count": "count(*)",
            "sum_duration": "coalesce(sum(v), 0)",
            "avg_duration": "avg(v)",
        }[agg]
        return source, expr
    if key in _SENT_FILTERS:
        return (
            f"select user_id, created_at as ts, lead_id from {S}.emails "
            f"where direction = 'sent' and {_SENT_FILTERS[key].format(reply=reply)} "
            f"and {upto('created_at')}",
            "count(*)",
        )
    if key == "emails.received.all.count":
        return (
            f"select user_id, created_at as ts, lead_id from {S}.emails "
            f"where direction = 'received' and {upto('created_at')}",
            "count(*)",
        )
    if key.startswith("emails.opened."):
        seq = "and e.send_type = 'sequence'" if "sequences" in key else ""
        return (
            f"select e.user_id, min(o.opened_at) as ts, e.lead_id from {S}.email_opens o "
            f"join {S}.emails e on e.id = o.email_id where {upto('o.opened_at')} {seq} "
            "group by e.id, e.user_id, e.lead_id",
            "count(*)",
        )
    if key.startswith("sms."):
        direction = "sent" if ".sent." in key else "received"
        return (
            f"select user_id, created_at as ts, lead_id from {S}.sms "
            f"where direction = '{direction}' and {upto('created_at')}",
            "count(*)",
        )
    if key == "leads.created.all.count":
        return (
            f"select created_by as user_id, created_at as ts, id as lead_id from {S}.leads "
            f"where {upto('created_at')}",
            "count(*)",
        )
    if key == "leads.contacted.all.count":
        return (
            "select arg_min(user_id, ts) as user_id, min(ts) as ts, lead_id from ("
            f"  select lead_id, user_id, created_at as ts from {S}.calls "
            "   where direction = 'outbound'"
            f"  union all select lead_id, user_id, created_at from {S}.emails "
            "   where direction = 'sent'"
            f"  union all select lead_id, user_id, created_at from {S}.sms "
            "   where direction = 'sent'"
            f") where {upto('ts')} group by lead_id",
            "count(*)",
        )
    if key.startswith(("opportunities.created.", "opportunities.created_for.")):
        who = "created_by" if ".created." in key else "user_id"
        expr = "count(*)" if key.endswith(".count") else "coalesce(sum(v), 0)"
        return (
            f"select {who} as user_id, created_at as ts, lead_id, annualized_value as v "
            f"from {S}.opportunities where {upto('created_at')}",
            expr,
        )
    if key.startswith("opportunities."):
        _, family, period, agg = key.split(".")
        outcome = "won" if family in ("won", "value_won") else "lost"
        period_filter = "" if period == "all" else f"and o.value_period = '{period}'"
        value = "o.annualized_value" if agg == "sum_annualized_value" else "o.value"
        expr = "count(*)" if agg == "count" else "coalesce(sum(v), 0)"
        # a win is counted on its date_won (earlier than the change when entered late),
        # once the change itself has happened
        return (
            f"select o.user_id, coalesce(c.date_won, c.changed_at) as ts, o.lead_id, "
            f"{value} as v from {S}.opportunity_status_changes c join {S}.opportunities o "
            f"on o.id = c.opportunity_id where c.new_status_type = '{outcome}' {period_filter} "
            f"and {upto('c.changed_at')}",
            expr,
        )
    raise KeyError(key)


def expected_metric(
    con: duckdb.DuckDBPyConnection,
    key: str,
    start: int,
    end: int,
    user_id: str | None = None,
    lead_source: str | None = None,
    now: int | None = None,
) -> float | int | None:
    """The metric over ``[start, end)`` from the exported events, optionally for one user and
    for the leads of one ``source`` (a Smart View), as of ``now`` (epoch seconds) if given."""
    source, expr = metric_sql(key, now)
    where = "ts >= ? and ts < ?"
    params: list[object] = [utc(start), utc(end)]
    if user_id is not None:
        where += " and user_id = ?"
        params.append(user_id)
    if lead_source is not None:
        where += f" and lead_id in (select id from {S}.leads where source = ?)"
        params.append(lead_source)
    value = con.execute(f"select {expr} from ({source}) where {where}", params).fetchall()[0][0]
    if isinstance(value, float) and key.endswith("avg_duration"):
        return round(value, 3)
    return value


# ---------------------------------------------------------------- status reports (Python)


@dataclass
class StatusTruth:
    """Brute-force status report numbers: per status id, and transition / summary counts."""

    counters: dict[str, dict[str, int]]
    transitions: dict[tuple[str | None, str], int]
    summary: dict[tuple[str | None, str], int]


def status_paths(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    object_filter: str = "true",
    now: int | None = None,
) -> dict[str, list[tuple[datetime, str | None, str]]]:
    """Per object id: its status events ``(ts, old, new)`` including the creation (only
    those at or before ``now``, epoch seconds, when given).

    ``object_filter`` is SQL over the alias ``x`` (``close_sim.leads`` or
    ``close_sim.opportunities``).
    """
    if now is not None:
        object_filter = f"({object_filter}) and x.created_at <= {sql_ts(now)}"
    table, changes_table, key = (
        ("leads", "lead_status_changes", "lead_id")
        if kind == "lead"
        else ("opportunities", "opportunity_status_changes", "opportunity_id")
    )
    objects = (
        f"select x.id, x.created_at, x.original_status_id from {S}.{table} x where {object_filter}"
    )
    changes = (
        f"select c.{key}, c.changed_at, c.old_status_id, c.new_status_id "
        f"from {S}.{changes_table} c join {S}.{table} x on x.id = c.{key} where {object_filter}"
        + ("" if now is None else f" and c.changed_at <= {sql_ts(now)}")
    )
    paths: dict[str, list[tuple[datetime, str | None, str]]] = defaultdict(list)
    for obj, at, status in con.execute(objects).fetchall():
        paths[obj].append((at, None, status))
    for obj, at, old, new in con.execute(changes).fetchall():
        paths[obj].append((at, old, new))
    for events in paths.values():
        events.sort(key=lambda e: (e[0], e[1] is not None))
    return paths


def status_truth(
    paths: dict[str, list[tuple[datetime, str | None, str]]], start: int, end: int
) -> StatusTruth:
    """started / ended / gained / lost / entered / left per status, plus transitions and the
    collapsed summary, for ``[start, end)``."""
    lo, hi = utc(start), utc(end)
    counters: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(("started", "ended", "gained", "lost", "entered", "left"), 0)
    )
    transitions: dict[tuple[str | None, str], set[str]] = defaultdict(set)
    summary: dict[tuple[str | None, str], int] = defaultdict(int)
    for obj, events in paths.items():
        at_start = at_end = None
        created_in = False
        entered: set[str] = set()
        left: set[str] = set()
        for at, old, new in events:
            if at < lo:
                at_start = new
            if at < hi:
                at_end = new
            if lo <= at < hi:
                if old is None:
                    created_in = True
                entered.add(new)
                if old is not None:
                    left.add(old)
                transitions[(old, new)].add(obj)
        if at_start is not None:
            counters[at_start]["started"] += 1
        if at_end is not None:
            counters[at_end]["ended"] += 1
        if at_start != at_end and at_end is not None:
            counters[at_end]["gained"] += 1
        if at_start != at_end and at_start is not None:
            counters[at_start]["lost"] += 1
        for status in entered:
            counters[status]["entered"] += 1
        for status in left:
            counters[status]["left"] += 1
        if at_end is not None and (created_in or at_start != at_end):
            summary[(None if created_in else at_start, at_end)] += 1
    return StatusTruth(
        counters=dict(counters),
        transitions={k: len(v) for k, v in transitions.items()},
        summary=dict(summary),
    )
