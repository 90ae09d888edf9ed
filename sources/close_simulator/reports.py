"""Pure report computations: an Org plus parsed parameters in, a JSON-ready dict out.

No HTTP here (``handler`` parses and validates requests). Instants are UTC epoch seconds and
windows are half-open ``[start, end)``; ``offset`` (seconds east of UTC, from
``X-TZ-Offset``) only decides day/week/month bucket boundaries and how instants are
rendered. Every report answers as of now: ``until`` (now + 1 s, exclusive) clips every
window, and replies, opens, wins and status changes count only when they happened before
it. Semantics are documented in ``docs/simulator.md``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .index import (
    LeadFilter,
    Pending,
    Series,
    activity_index,
    funnel_index,
    sent_email_index,
    status_index,
)
from .metrics import ATOMS, METRIC_BY_KEY, METRICS, Metric
from .org import ANNUALIZE, Org
from .timeutil import (
    bucket_interval,
    buckets,
    local_date,
    render_local,
    render_query_instant,
    render_utc_query,
)

JSON = dict[str, Any]


def number(value: float) -> int | float:
    """A ratio or average as Close renders it: whole numbers as ``int`` (``1``, ``0``)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def ratio(numerator: float, denominator: float) -> int | float | None:
    """``numerator / denominator`` rounded to 6 places, ``None`` for a zero denominator."""
    if not denominator:
        return None
    return number(round(numerator / denominator, 6))


def round_half_up(value: float) -> int:
    """Rounds halves away from zero (``2.5`` -> 3, ``-2.5`` -> -3)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


# ---------------------------------------------------------------- activity metrics


def activity_metrics_list() -> JSON:
    """``GET /report/activity/metrics/``."""
    return {
        "metrics": [{"key": m.key, "name": m.name, "description": m.description} for m in METRICS]
    }


def _metric_value(metric: Metric, counts: Sequence[int], sums: Sequence[int]) -> int | float | None:
    kind = metric.kind
    if kind == "count":
        return sum(counts[a] for a in metric.atoms)
    if kind == "sum":
        return sum(sums[a] for a in metric.atoms)
    if kind == "annualized":
        return sum(w * sums[a] for a, w in zip(metric.atoms, metric.weights, strict=True))
    count = sum(counts[a] for a in metric.atoms)
    if not count:
        return None
    return number(round(sum(sums[a] for a in metric.atoms) / count, 3))


def _atoms_of(metrics: Sequence[Metric]) -> list[int]:
    return sorted({a for m in metrics for a in m.atoms})


def _measure(
    series_by_atom: Sequence[Sequence[Series]],
    atoms: list[int],
    start: int,
    end: int,
    pending: Pending | None = None,
    users: list[int] | None = None,
) -> tuple[list[int], list[int]]:
    """Per-atom count and value sum over ``[start, end)``, summed over the given series and
    corrected by ``pending`` (events not yet true at until) for ``users`` (None = org)."""
    counts = [0] * len(ATOMS)
    sums = [0] * len(ATOMS)
    if end <= start:
        return counts, sums
    for atom in atoms:
        c = s = 0
        for series in series_by_atom[atom]:
            dc, ds = series.count_sum(start, end)
            c += dc
            s += ds
        counts[atom] = c
        sums[atom] = s
    if pending is not None:
        pending.adjust(atoms, users, start, end, counts, sums)
    return counts, sums


def _row(metrics: Sequence[Metric], counts: list[int], sums: list[int]) -> JSON:
    return {m.key: _metric_value(m, counts, sums) for m in metrics}


def activity_report(
    org: Org,
    *,
    report_type: str,
    metric_keys: Sequence[str],
    start: int,
    end: int,
    offset: int,
    until: int,
    users: Sequence[int] | None = None,
    lead_filter: LeadFilter | None = None,
    saved_search_id: str | None = None,
) -> JSON:
    """``POST /report/activity/`` (``overview`` or ``comparison``) as of ``until``.

    Args:
        org: The organization.
        report_type: ``overview`` (time buckets) or ``comparison`` (one row per user).
        metric_keys: Metric keys (validated by the caller).
        start: Window start (inclusive).
        end: Window end (exclusive).
        offset: Seconds east of UTC for buckets and rendering.
        until: Now + 1 s: events at or after it do not count (yet).
        users: User indexes to restrict to (``None`` = everyone).
        lead_filter: Smart View restriction (events of its leads only).
        saved_search_id: Id of that Smart View, for the drill-down queries.
    """
    metrics = [METRIC_BY_KEY[k] for k in metric_keys]
    atoms = _atoms_of(metrics)
    index = activity_index(org, lead_filter)
    pending = index.late.pending(until)
    user_list = list(users) if users is not None else None
    if users is None:
        scope: list[list[Series]] = [[s] for s in index.org]
    else:
        scope = [[index.user[a][u] for u in users] for a in range(len(ATOMS))]
    counts, sums = _measure(scope, atoms, start, min(end, until), pending, user_list)
    totals = _row(metrics, counts, sums)
    if report_type == "overview":
        data = []
        for label, lo, hi in buckets(start, end, offset, bucket_interval(start, end)):
            bucket_counts, bucket_sums = _measure(
                scope, atoms, lo, min(hi, until), pending, user_list
            )
            data.append(
                {
                    "datetime": render_local(label, offset),
                    **_row(metrics, bucket_counts, bucket_sums),
                }
            )
        user_ids = [org.users[u].id for u in users] if users is not None else None
        return {
            "aggregations": {"totals": totals},
            "data": data,
            "queries": {
                "leads": {
                    m.key: [_metric_query(m, start, end, offset, user_ids, saved_search_id)]
                    for m in metrics
                }
            },
        }
    if users is None:
        chosen = [
            u
            for u, user in enumerate(org.users)
            if user.is_active or index.any[u].count(start, min(end, until))
        ]
    else:
        chosen = list(users)
    rows = []
    for u in chosen:
        user_counts, user_sums = _measure(
            [[index.user[a][u]] for a in range(len(ATOMS))],
            atoms,
            start,
            min(end, until),
            pending,
            [u],
        )
        rows.append({"user_id": org.users[u].id, **_row(metrics, user_counts, user_sums)})
    return {
        "aggregations": {"totals": totals},
        "data": rows,
        "lookup": {"user": {org.users[u].id: {"display": org.users[u].full_name} for u in chosen}},
    }


_QUERY_PARTS: dict[str, tuple[str, str, str]] = {
    # atom prefix -> (object, date field, fixed clauses)
    "call.inbound": ("call", "date", 'direction: "inbound"'),
    "call.outbound": ("call", "outgoing_call_date", 'direction: "outbound"'),
    "call.": ("call", "date", ""),
    "email.sent": ("email", "sent", 'direction: "outgoing" and status: "sent"'),
    "email.received": ("email", "received", 'direction: "incoming"'),
    "email.opened": ("email", "opened", 'direction: "outgoing"'),
    "sms.sent": ("sms", "date", 'direction: "outbound"'),
    "sms.received": ("sms", "date", 'direction: "inbound"'),
    "lead.created": ("", "created", ""),
    "lead.contacted": ("", "first_contacted", ""),
    "opportunity.created": ("opportunity", "date_created", ""),
    "opportunity.won": ("opportunity", "date_won", 'status_type: "won"'),
    "opportunity.lost": ("opportunity", "date_lost", 'status_type: "lost"'),
}


def _metric_query(
    metric: Metric,
    start: int,
    end: int,
    offset: int,
    user_ids: list[str] | None,
    saved_search_id: str | None,
) -> str:
    """A Close-style lead search string listing the leads behind a metric."""
    names = [ATOMS[a] for a in metric.atoms]
    common = names[0] if len(names) == 1 else _common_prefix(names)
    obj, date_field, fixed = next(
        (v for prefix, v in _QUERY_PARTS.items() if common.startswith(prefix)),
        ("", "date", ""),
    )
    clauses = [fixed] if fixed else []
    if ".sequence" in common:
        clauses.append("sequence: any")
    if common.endswith(".reply"):
        clauses.append("has_reply: yes")
    lo, hi = render_query_instant(start, offset), render_query_instant(end, offset)
    clauses.append(f'{date_field} >= "{lo}" and {date_field} < "{hi}"')
    if user_ids:
        clauses.append("user in (" + ", ".join(f'"{u}"' for u in user_ids) + ")")
    body = " and ".join(clauses)
    query = f"{obj}({body})" if obj else body
    if saved_search_id:
        query += f' and in:"{saved_search_id}"'
    return query


def _common_prefix(names: list[str]) -> str:
    first, last = min(names), max(names)
    k = 0
    while k < min(len(first), len(last)) and first[k] == last[k]:
        k += 1
    return first[:k]


# ---------------------------------------------------------------- sent emails


def sent_emails_report(
    org: Org, *, start: int, end: int, until: int, user: int | None = None
) -> JSON:
    """``GET /report/sent_emails/{org}/``: emails sent in the window, by template.

    ``opened`` / ``responded`` count the window's emails that were opened / replied to
    before ``until`` (as of now).
    """
    index = sent_email_index(org)
    totals: dict[int, list[int]] = {}
    overall = [0, 0, 0]
    opened_at, replied_at = index.opened_at, index.replied_at
    for k in index.window(start, min(end, until)):
        if user is not None and index.user[k] != user:
            continue
        opened = 1 if opened_at[k] < until else 0
        replied = 1 if replied_at[k] < until else 0
        overall[0] += 1
        overall[1] += opened
        overall[2] += replied
        template = index.template[k]
        if template >= 0:
            bucket = totals.setdefault(template, [0, 0, 0])
            bucket[0] += 1
            bucket[1] += opened
            bucket[2] += replied
    date_clause = f'date >= "{render_utc_query(start)}" and date < "{render_utc_query(end)}"' + (
        f' user:"{org.users[user].id}"' if user is not None else ""
    )

    def row(
        name: str, template_id: str | None, shared: bool, counts: list[int], extra: str
    ) -> JSON:
        total, opened, responded = counts
        base = f"direction:sent {date_clause}{extra}"
        return {
            "name": name,
            "template_id": template_id,
            "template_url": (
                None
                if template_id is None
                else f"/organization/{org.id}/email_templates/{template_id}/"
            ),
            "is_shared": shared,
            "total": total,
            "opened": opened,
            "responded": responded,
            "percentage_opened": round_half_up(100 * opened / total) if total else 0,
            "percentage_responded": round_half_up(100 * responded / total) if total else 0,
            "_queries": {
                "total": f"email({base})",
                "opened": f"email({base} opened:yes)",
                "responded": f"email({base} has_reply:yes)",
            },
        }

    rows = [row("All Emails", None, True, overall, "")]
    ordered = sorted(totals.items(), key=lambda kv: (-kv[1][0], org.templates[kv[0]].name))
    for template, counts in ordered:
        tmpl = org.templates[template]
        rows.append(row(tmpl.name, tmpl.id, tmpl.is_shared, counts, f' template:"{tmpl.name}"'))
    return {"sent_email_stats": rows}


# ---------------------------------------------------------------- status reports

COUNTERS = ("started", "ended", "gained", "lost", "entered", "left")


def status_report(
    org: Org,
    kind: str,
    *,
    start: int,
    end: int,
    offset: int,
    until: int,
    lead_filter: LeadFilter | None = None,
    user: int | None = None,
) -> JSON:
    """``GET /report/statuses/{lead|opportunity}/{org}/`` over ``[start, end)`` as of now:
    the states and the window's events are those before ``until``.

    Args:
        org: The organization.
        kind: ``lead`` or ``opportunity``.
        start: Period start; the "started" state is after every event before it.
        end: Period end (exclusive); the "ended" state is after every event before it.
        offset: Seconds east of UTC (dates in the opportunity page URLs).
        lead_filter: Restriction to a Smart View / lead field.
        user: Opportunity user restriction (opportunity report only).
    """
    index = status_index(org, kind, lead_filter, user if kind == "opportunity" else None)
    if kind == "lead":
        statuses: list[tuple[str, str, bool]] = [
            (s.id, s.label, s.is_deleted) for s in org.lead_statuses
        ]
    else:
        statuses = [(s.id, s.label, False) for s in org.opportunity_statuses]
    n = len(statuses)
    seen_start, seen_end = min(start, until), min(end, until)
    started = [index.count_at(s, seen_start) for s in range(n)]
    ended = [index.count_at(s, seen_end) for s in range(n)]
    first_from: dict[int, int] = {}
    last_to: dict[int, int] = {}
    entered: list[set[int]] = [set() for _ in range(n)]
    left: list[set[int]] = [set() for _ in range(n)]
    pairs: dict[tuple[int, int], set[int]] = {}
    objs, olds, news = index.obj, index.old, index.new
    for i in index.window(seen_start, seen_end):
        obj, old, new = objs[i], olds[i], news[i]
        if obj not in first_from:
            first_from[obj] = old
        last_to[obj] = new
        entered[new].add(obj)
        if old >= 0:
            left[old].add(obj)
        members = pairs.get((old, new))
        if members is None:
            pairs[(old, new)] = {obj}
        else:
            members.add(obj)
    gained = [0] * n
    lost = [0] * n
    summary: dict[tuple[int, int], int] = {}
    for obj, before in first_from.items():
        after = last_to[obj]
        if before != after:
            gained[after] += 1
            if before >= 0:
                lost[before] += 1
        if before < 0 or before != after:
            summary[(before, after)] = summary.get((before, after), 0) + 1

    text = _StatusText(kind, start, end, offset)
    overview = []
    for s, (status_id, label, deleted) in enumerate(statuses):
        counts = {
            "started": started[s],
            "ended": ended[s],
            "gained": gained[s],
            "lost": lost[s],
            "entered": len(entered[s]),
            "left": len(left[s]),
        }
        if deleted and not any(counts.values()):
            continue
        change = ended[s] - started[s]
        row: JSON = {
            "status_id": status_id,
            "status_label": label,
            "status_is_deleted": deleted,
            "started": started[s],
            "ended": ended[s],
            "change": change,
            "change_percent": (round_half_up(100 * change / started[s]) if started[s] else None),
            "gained": gained[s],
            "lost": lost[s],
            "entered": counts["entered"],
            "left": counts["left"],
        }
        queries = text.overview_queries(label)
        row["_queries"] = queries
        row["_leads_page_urls"] = {k: text.lead_url(q) for k, q in queries.items()}
        if kind == "opportunity":
            row["_opportunities_page_urls"] = {k: text.opportunity_url(k, label) for k in queries}
        overview.append(row)

    def transition_rows(counts: dict[tuple[int, int], int], summarized: bool) -> list[JSON]:
        result = []
        for (before, after), count in sorted(counts.items()):
            src = statuses[before] if before >= 0 else None
            dst = statuses[after]
            query = text.transition_query(src[1] if src else None, dst[1], summarized)
            item: JSON = {
                "from_status_id": src[0] if src else None,
                "from_status_label": src[1] if src else None,
                "from_status_is_deleted": src[2] if src else None,
                "to_status_id": dst[0],
                "to_status_label": dst[1],
                "to_status_is_deleted": dst[2],
                "count": count,
                "_query": query,
                "_leads_page_url": text.lead_url(query),
            }
            if kind == "opportunity":
                item["_opportunities_page_url"] = text.opportunity_url(
                    "transition", dst[1], src[1] if src else None
                )
            result.append(item)
        return result

    return {
        "status_overview": overview,
        "status_transitions": transition_rows({k: len(v) for k, v in pairs.items()}, False),
        "status_transitions_summary": transition_rows(summary, True),
    }


class _StatusText:
    """Close-style drill-down strings of a status report."""

    def __init__(self, kind: str, start: int, end: int, offset: int) -> None:
        self.kind = kind
        self.lo = render_utc_query(start)
        self.hi = render_utc_query(end - 1)
        self.start_date = local_date(start, offset).isoformat()
        self.end_date = local_date(end, offset).isoformat()
        self.status = "lead_status" if kind == "lead" else "opportunity_status"
        self.change = f"{self.status}_change"
        self.original = f"original_{self.status}"

    def wrap(self, query: str) -> str:
        return query if self.kind == "lead" else f"opportunity({query})"

    def overview_queries(self, label: str) -> dict[str, str]:
        at_start = f'{self.status}(status:"{label}" on:"{self.lo}")'
        at_end = f'{self.status}(status:"{label}" on:"{self.hi}")'
        period = f'date >= "{self.lo}" and date <= "{self.hi}"'
        created = f'created >= "{self.lo}" and created <= "{self.hi}"'
        queries = {
            "started": at_start,
            "ended": at_end,
            "gained": f"not {at_start} and {at_end}",
            "lost": f"{at_start} and not {at_end}",
            "entered": (
                f'({self.original}:"{label}" and {created}) or '
                f'{self.change}(new_status:"{label}" and {period})'
            ),
            "left": f'{self.change}(old_status:"{label}" and {period})',
        }
        return {k: self.wrap(v) for k, v in queries.items()}

    def transition_query(self, src: str | None, dst: str, summarized: bool) -> str:
        at_end = f'{self.status}(status:"{dst}" on:"{self.hi}")'
        if summarized:
            if src is None:
                query = f'created > "{self.lo}" and {at_end}'
            else:
                query = f'{self.status}(status:"{src}" on:"{self.lo}") and {at_end}'
        elif src is None:
            query = f'{self.original}:"{dst}" and created >= "{self.lo}" and created <= "{self.hi}"'
        else:
            query = (
                f'{self.change}(old_status:"{src}" new_status:"{dst}" and '
                f'date >= "{self.lo}" and date <= "{self.hi}")'
            )
        return self.wrap(query)

    @staticmethod
    def lead_url(query: str) -> str:
        return "/search/" + quote(query, safe="") + "/"

    def opportunity_url(self, counter: str, label: str, src: str | None = None) -> str:
        parts = [f"custom_filter_end_status_label={quote(label, safe='')}"]
        if src is not None:
            parts.append(f"custom_filter_start_status_label={quote(src, safe='')}")
        parts += [
            f"custom_filter_type={counter}",
            f"custom_filter_date_start={self.start_date}",
            f"custom_filter_date_end={self.end_date}",
        ]
        return "/opportunities/" + "&".join(parts) + "/"


# ---------------------------------------------------------------- funnels


@dataclass
class _Opp:
    user: int
    value: int
    reached: int
    outcome: str
    created: int
    won_at: int | None
    advance: dict[int, int] = field(default_factory=dict)


def _evaluate(
    path: list[tuple[int, int]], until: int, stage_of: dict[int, int], types: list[str]
) -> tuple[int, str, int | None, dict[int, int]]:
    """Highest stage reached, final status type, first win time and, per stage, seconds from
    first entering it to first reaching a later stage."""
    reached = 0
    entered: dict[int, int] = {}
    advance: dict[int, int] = {}
    won_at: int | None = None
    final = "active"
    for at, status in path:
        if at >= until:
            break
        final = types[status]
        stage = stage_of.get(status)
        if stage is None:
            continue
        if final == "won" and won_at is None:
            won_at = at
        for earlier, since in entered.items():
            if earlier < stage and earlier not in advance:
                advance[earlier] = at - since
        entered.setdefault(stage, at)
        reached = max(reached, stage)
    return reached, final, won_at, advance


def funnel_report(
    org: Org,
    which: str,
    *,
    pipeline: int,
    cohort_type: str,
    report_range: tuple[int, int] | None,
    cohort_range: tuple[int, int] | None,
    until: int,
    users: set[int] | None = None,
    lead_filter: LeadFilter | None = None,
) -> JSON:
    """``POST /report/funnel/opportunity/{totals|stages}/`` for one pipeline.

    Cohort: ``created-cohort`` = the pipeline's opportunities created in ``cohort_range``
    (and before ``until``), evaluated as of now (``T = until``; the report range does not
    change the numbers); ``active-stage-cohort`` = those in an active status at some moment
    of ``report_range``, evaluated at ``T = min(end of report_range, until)``.
    """
    index = funnel_index(org)
    ordered = org.pipeline_statuses(pipeline)
    types = [s.type for s in org.opportunity_statuses]
    active = [s for s in ordered if types[s] == "active"]
    won = [s for s in ordered if types[s] == "won"]
    stages = active + won[:1]
    stage_of = {s: i for i, s in enumerate(active)}
    for s in won:
        stage_of[s] = len(active)
    members = index.by_pipeline[pipeline]
    created = index.created[pipeline]
    if cohort_type == "created-cohort":
        if cohort_range is None:
            raise ValueError("created-cohort needs a cohort range")
        t_eval = until
        lo = bisect_left(created, cohort_range[0])
        hi = bisect_left(created, min(cohort_range[1], t_eval))
        candidates = members[lo:hi] if hi > lo else []
    else:
        if report_range is None:
            raise ValueError("active-stage-cohort needs a report range")
        t_eval = min(report_range[1], until)
        r_start, r_end = min(report_range[0], t_eval), t_eval
        closed = index.closed[pipeline]
        hi = bisect_left(created, r_end)
        candidates = []
        for k in range(hi):
            if closed[k] < r_start:
                continue
            path = index.paths[members[k]]
            state = None
            hit = False
            for at, status in path:
                if at >= r_end:
                    break
                if at < r_start:
                    state = status
                    continue
                if types[status] == "active":
                    hit = True
                    break
            if hit or (state is not None and types[state] == "active"):
                candidates.append(members[k])
    opps = org.opportunities
    mask = lead_filter.mask(org) if lead_filter is not None else None
    records: list[_Opp] = []
    for opp in candidates:
        user = opps.user[opp]
        if users is not None and user not in users:
            continue
        if mask is not None and not mask[opps.lead[opp]]:
            continue
        reached, outcome, won_at, advance = _evaluate(index.paths[opp], t_eval, stage_of, types)
        records.append(
            _Opp(
                user=user,
                value=opps.value[opp] * ANNUALIZE[opps.period[opp]],
                reached=reached,
                outcome=outcome,
                created=opps.created_at[opp],
                won_at=won_at,
                advance=advance,
            )
        )
    by_user: dict[int, list[_Opp]] = {}
    for record in records:
        by_user.setdefault(record.user, []).append(record)
    user_order = sorted(by_user)
    statuses = [org.opportunity_statuses[s] for s in stages]
    if which == "totals":
        return {
            "aggregations": _funnel_totals(records),
            "data": [
                {"user_id": org.users[u].id, **_funnel_totals(by_user[u])} for u in user_order
            ],
        }
    return {
        "aggregations": {"stages": _funnel_stages(records, statuses)},
        "data": [
            {"user_id": org.users[u].id, "stages": _funnel_stages(by_user[u], statuses)}
            for u in user_order
        ],
    }


def _funnel_totals(records: list[_Opp]) -> JSON:
    count = len(records)
    complete = [r for r in records if r.outcome != "active"]
    wins = [r for r in records if r.outcome == "won"]
    value_complete = sum(r.value for r in complete)
    value_won = sum(r.value for r in wins)
    win_times = [r.won_at - r.created for r in wins if r.won_at is not None]
    time_to_win = round_half_up(sum(win_times) / len(win_times)) if win_times else None
    average_won = round_half_up(value_won / len(wins)) if wins else 0
    win_rate = ratio(len(wins), len(complete))
    velocity = 0
    if wins and win_rate is not None and time_to_win is not None:
        cycle_days = max(1.0, time_to_win / 86_400)
        velocity = round_half_up(count * win_rate * average_won / cycle_days)
    return {
        "count": count,
        "count_total_complete": len(complete),
        "count_total_won": len(wins),
        "count_win_rate": win_rate,
        "value_total_complete": value_complete,
        "value_total_won": value_won,
        "value_win_rate": ratio(value_won, value_complete),
        "average_time_to_win": time_to_win,
        "average_value_annualized_per_won_opportunity": average_won,
        "sales_velocity": velocity,
    }


def _funnel_stages(records: list[_Opp], statuses: list[Any]) -> list[JSON]:
    k = len(statuses)
    count = [0] * k
    value = [0] * k
    count_lost = [0] * k
    value_lost = [0] * k
    advance_sum = [0] * k
    advance_n = [0] * k
    for r in records:
        for i in range(r.reached + 1):
            count[i] += 1
            value[i] += r.value
        if r.outcome == "lost":
            count_lost[r.reached] += 1
            value_lost[r.reached] += r.value
        for stage, seconds in r.advance.items():
            advance_sum[stage] += seconds
            advance_n[stage] += 1
    won_count = count[k - 1]
    weighted = [round_half_up(value[i] * won_count / count[i]) if count[i] else 0 for i in range(k)]
    rows = []
    for i, status in enumerate(statuses):
        last = i == k - 1

        def conversion(series: list[int], i: int = i, last: bool = last) -> int | float | None:
            if not series[i]:
                return None
            return 0 if last else ratio(series[i + 1], series[i])

        rows.append(
            {
                "status": {"id": status.id, "label": status.label, "type": status.type},
                "count": count[i],
                "count_conversion_rate": conversion(count),
                "count_lost": count_lost[i],
                "count_lost_ratio": ratio(count_lost[i], count[i]),
                "value": value[i],
                "value_conversion_rate": conversion(value),
                "value_lost": value_lost[i],
                "value_lost_ratio": ratio(value_lost[i], value[i]),
                "weighted_value": weighted[i],
                "weighted_value_conversion_rate": conversion(weighted),
                "average_time_to_advance": (
                    None
                    if last or not advance_n[i]
                    else round_half_up(advance_sum[i] / advance_n[i])
                ),
            }
        )
    return rows
