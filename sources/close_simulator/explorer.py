"""The Explorer (``/report/custom/``) report: a defined subset of Close's custom reports.

Close does not publish this endpoint's response shape, so the simulator defines one (see
``docs/simulator.md``)::

    {"x": ..., "y": ..., "interval": ..., "transform_y": ..., "group_by": ...,
     "start": ..., "end": ...,
     "series": [{"key": <group value or "_all">, "label": <display>, "count": <objects>,
                 "data": [{"x": <"YYYY-MM-DD" bucket start | number>, "y": <number | null>}]}]}

Objects: lead, opportunity, call, email, sms. ``x`` is a date field (``<object>.date_created``
or the lead custom field ``lead.custom.Renewal Date``: date buckets) or a numeric field
(histogram); ``y`` is ``<object>.count``, a numeric field of the same object, or
``lead.count`` (distinct leads of the x object). Lead custom fields (``lead.custom.MRR``,
``lead.custom.Seats``, ``lead.custom.Plan``, ``lead.custom.Renewal Date``) may be empty:
an empty value is left out of histograms, sums and averages and groups as ``_none``.

As of now: only objects created before ``until`` count; grouping by status uses the status
as of now.
"""

from __future__ import annotations

import math
import re
from array import array
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .index import LeadFilter, cached, status_index
from .org import (
    ANNUALIZE,
    CALL_DIRECTIONS,
    CALL_TYPES,
    EMAIL_DIRECTIONS,
    INDUSTRIES,
    LEAD_SOURCES,
    NO_VALUE,
    PLANS,
    SMS_DIRECTIONS,
    VALUE_PERIODS,
    Org,
)
from .timeutil import DAY, buckets, local_date, parse_instant, render_local

JSON = dict[str, Any]

OBJECTS = ("lead", "opportunity", "call", "email", "sms")
INTERVALS = ("auto", "hour", "day", "week", "month", "quarter", "year")
TRANSFORMS = ("sum", "avg", "min", "max")
MAX_BUCKETS = 5000


@dataclass(frozen=True)
class FieldSpec:
    """One Explorer field: ``type`` ∈ date / number / choice / user."""

    name: str
    label: str
    type: str
    object_type: str


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("lead.date_created", "Lead: Date Created", "date", "lead"),
    FieldSpec("lead.count", "Lead: Count", "number", "lead"),
    FieldSpec("lead.status", "Lead: Status", "choice", "lead"),
    FieldSpec("lead.source", "Lead: Source", "choice", "lead"),
    FieldSpec("lead.industry", "Lead: Industry", "choice", "lead"),
    FieldSpec("lead.user", "Lead: Created By", "user", "lead"),
    FieldSpec("lead.custom.MRR", "Lead: MRR", "number", "lead"),
    FieldSpec("lead.custom.Seats", "Lead: Seats", "number", "lead"),
    FieldSpec("lead.custom.Plan", "Lead: Plan", "choice", "lead"),
    FieldSpec("lead.custom.Renewal Date", "Lead: Renewal Date", "date", "lead"),
    FieldSpec("opportunity.date_created", "Opportunity: Date Created", "date", "opportunity"),
    FieldSpec("opportunity.count", "Opportunity: Count", "number", "opportunity"),
    FieldSpec("opportunity.value", "Opportunity: Value", "number", "opportunity"),
    FieldSpec(
        "opportunity.annualized_value", "Opportunity: Annualized Value", "number", "opportunity"
    ),
    FieldSpec("opportunity.status", "Opportunity: Status", "choice", "opportunity"),
    FieldSpec("opportunity.status_type", "Opportunity: Status Type", "choice", "opportunity"),
    FieldSpec("opportunity.pipeline", "Opportunity: Pipeline", "choice", "opportunity"),
    FieldSpec("opportunity.value_period", "Opportunity: Value Period", "choice", "opportunity"),
    FieldSpec("opportunity.user", "Opportunity: User", "user", "opportunity"),
    FieldSpec("call.date_created", "Call: Date", "date", "call"),
    FieldSpec("call.count", "Call: Count", "number", "call"),
    FieldSpec("call.duration", "Call: Duration", "number", "call"),
    FieldSpec("call.direction", "Call: Direction", "choice", "call"),
    FieldSpec("call.type", "Call: Type", "choice", "call"),
    FieldSpec("call.user", "Call: User", "user", "call"),
    FieldSpec("email.date_created", "Email: Date", "date", "email"),
    FieldSpec("email.count", "Email: Count", "number", "email"),
    FieldSpec("email.direction", "Email: Direction", "choice", "email"),
    FieldSpec("email.template", "Email: Template", "choice", "email"),
    FieldSpec("email.user", "Email: User", "user", "email"),
    FieldSpec("sms.date_created", "SMS: Date", "date", "sms"),
    FieldSpec("sms.count", "SMS: Count", "number", "sms"),
    FieldSpec("sms.direction", "SMS: Direction", "choice", "sms"),
    FieldSpec("sms.user", "SMS: User", "user", "sms"),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}
CUSTOM_DATE_FIELDS = {"lead.custom.Renewal Date": "renewal_day"}
"""Date-typed custom fields -> LeadTable column (days since 1970-01-01)."""


class ExplorerError(ValueError):
    """Invalid Explorer parameters: ``field_errors`` maps parameter -> message."""

    def __init__(self, field_errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in field_errors.items()))
        self.field_errors = field_errors


def custom_fields() -> JSON:
    """``GET /report/custom/fields/`` (built-in fields, then the lead custom fields)."""
    return {
        "fields": [
            {"name": f.name, "label": f.label, "type": f.type, "object_type": f.object_type}
            for f in FIELDS
        ]
    }


# ---------------------------------------------------------------- per-object columns


@dataclass
class _Objects:
    """One object type's rows sorted by a date field: creation time (epoch seconds) or, for
    a date custom field, its day at UTC midnight (``dated``: shift by the request's offset to
    get local midnight); empty values are left out."""

    ts: array[int]
    rows: list[int]
    lead: Callable[[int], int]
    user: Callable[[int], int]
    created: Callable[[int], int]
    dated: bool = False


def _objects(org: Org, obj: str, by: str) -> _Objects:
    def build() -> _Objects:
        if obj == "lead":
            times = org.leads.created_at
            lead: Callable[[int], int] = int
            users = org.leads.created_by
        elif obj == "opportunity":
            times = org.opportunities.created_at
            lead = org.opportunities.lead.__getitem__
            users = org.opportunities.user
        elif obj == "call":
            times, lead, users = org.calls.at, org.calls.lead.__getitem__, org.calls.user
        elif obj == "email":
            times, lead, users = org.emails.at, org.emails.lead.__getitem__, org.emails.user
        else:
            times, lead, users = org.sms.at, org.sms.lead.__getitem__, org.sms.user
        created = times.__getitem__
        if by == "created":
            rows = sorted(range(len(times)), key=times.__getitem__)
            keys = array("q", [times[r] for r in rows])
            return _Objects(keys, rows, lead, users.__getitem__, created)
        column = getattr(org.leads, CUSTOM_DATE_FIELDS[by])
        rows = sorted(
            (r for r in range(len(column)) if column[r] != NO_VALUE), key=column.__getitem__
        )
        keys = array("q", [column[r] * DAY for r in rows])
        return _Objects(keys, rows, lead, users.__getitem__, created, dated=True)

    return cached(org, f"explorer:{obj}:{by}", build)


def _current_status(org: Org, kind: str, until: int) -> list[int]:
    """Status of every lead / opportunity as of now: its last status event before ``until``
    (objects created later are never counted, their entry is meaningless). The last
    ``until`` computed is cached."""
    key = f"explorer:current:{kind}"
    hit = org.cache.get(key)
    if hit is not None and hit[0] == until:
        cached_status: list[int] = hit[1]
        return cached_status
    index = status_index(org, kind)
    current = [0] * len(org.leads if kind == "lead" else org.opportunities)
    stop = bisect_left(index.ts, until)
    for obj, new in zip(index.obj[:stop], index.new[:stop], strict=True):
        current[obj] = new
    with org.lock:
        org.cache[key] = (until, current)
    return current


def _numeric(org: Org, name: str) -> Callable[[int], int | None]:
    """Row -> value of a numeric field (None for an empty custom field)."""
    if name == "call.duration":
        return org.calls.duration.__getitem__
    if name == "opportunity.value":
        return org.opportunities.value.__getitem__
    if name == "opportunity.annualized_value":
        opps = org.opportunities
        return lambda r: opps.value[r] * ANNUALIZE[opps.period[r]]
    if name in ("lead.custom.MRR", "lead.custom.Seats"):
        column = org.leads.mrr if name == "lead.custom.MRR" else org.leads.seats
        return lambda r: None if column[r] == NO_VALUE else column[r]
    raise KeyError(name)


def _grouper(
    org: Org, name: str, obj: str, objects: _Objects, until: int
) -> Callable[[int], tuple[str, str]]:
    """Row -> (series key, label) for a ``group_by`` field (statuses as of now)."""
    users = org.users
    if name in ("user", f"{obj}.user"):
        return lambda r: (users[objects.user(r)].id, users[objects.user(r)].full_name)
    if name == "lead.status":
        statuses = org.lead_statuses
        current = _current_status(org, "lead", until)
        return lambda r: (statuses[current[r]].id, statuses[current[r]].label)
    if name == "lead.custom.Plan":
        plans = org.leads.plan
        return lambda r: ("_none", "None") if plans[r] == NO_VALUE else (PLANS[plans[r]],) * 2
    if name in ("lead.source", "lead.industry"):
        column = org.leads.source if name == "lead.source" else org.leads.industry
        names = LEAD_SOURCES if name == "lead.source" else INDUSTRIES
        return lambda r: (names[column[r]], names[column[r]])
    opps = org.opportunities
    if name in ("opportunity.status", "opportunity.status_type"):
        opp_statuses = org.opportunity_statuses
        current = _current_status(org, "opportunity", until)
        if name == "opportunity.status":
            return lambda r: (opp_statuses[current[r]].id, opp_statuses[current[r]].label)
        return lambda r: (opp_statuses[current[r]].type, opp_statuses[current[r]].type)
    if name == "opportunity.pipeline":
        return lambda r: (org.pipelines[opps.pipeline[r]].id, org.pipelines[opps.pipeline[r]].name)
    if name == "opportunity.value_period":
        return lambda r: (VALUE_PERIODS[opps.period[r]], VALUE_PERIODS[opps.period[r]])
    choices: dict[str, tuple[tuple[str, ...], array[int]]] = {
        "call.direction": (CALL_DIRECTIONS, org.calls.direction),
        "call.type": (CALL_TYPES, org.calls.kind),
        "email.direction": (EMAIL_DIRECTIONS, org.emails.direction),
        "sms.direction": (SMS_DIRECTIONS, org.sms.direction),
    }
    if name in choices:
        labels, codes = choices[name]
        return lambda r: (labels[codes[r]], labels[codes[r]])
    if name == "email.template":
        templates = org.templates

        def template(r: int) -> tuple[str, str]:
            t = org.emails.template[r]
            return ("_none", "No template") if t < 0 else (templates[t].id, templates[t].name)

        return template
    raise KeyError(name)


# ---------------------------------------------------------------- query filter

_CLAUSE = re.compile(r'^\s*([a-z_]+)\s*:\s*"?([^"]*)"?\s*$')


def _query_filter(
    org: Org, obj: str, query: str | None, until: int
) -> Callable[[int], bool] | None:
    """A row predicate from a small search-query subset (clauses joined by ``and``)."""
    if query is None or query.strip() in ("", "*"):
        return None
    tests: list[Callable[[int], bool]] = []
    objects = _objects(org, obj, "created")
    for clause in re.split(r"\s+and\s+", query.strip()):
        match = _CLAUSE.match(clause)
        if not match:
            raise ExplorerError({"query": f"Unsupported query clause: {clause!r}"})
        name, value = match.group(1), match.group(2)
        tests.append(_clause_test(org, obj, objects, name, value, until))
    return lambda r: all(test(r) for test in tests)


def _clause_test(
    org: Org, obj: str, objects: _Objects, name: str, value: str, until: int
) -> Callable[[int], bool]:
    if name == "direction" and obj in ("call", "email", "sms"):
        wanted = {"incoming": 0, "inbound": 0, "received": 0}.get(value)
        if wanted is None:
            wanted = {"outgoing": 1, "outbound": 1, "sent": 1}.get(value)
        if wanted is None:
            raise ExplorerError({"query": f"Unknown direction: {value!r}"})
        column = {
            "call": org.calls.direction,
            "email": org.emails.direction,
            "sms": org.sms.direction,
        }[obj]
        return lambda r: column[r] == wanted
    if name in ("source", "industry"):
        names = LEAD_SOURCES if name == "source" else INDUSTRIES
        if value not in names:
            raise ExplorerError({"query": f"Unknown {name}: {value!r}"})
        code = names.index(value)
        lead_column = org.leads.source if name == "source" else org.leads.industry
        return lambda r: lead_column[objects.lead(r)] == code
    if name in ("in", "saved_search"):
        mask = LeadFilter.for_search(org, value).mask(org)
        return lambda r: bool(mask[objects.lead(r)])
    if name == "user":
        try:
            user = org.user_index(value)
        except KeyError as exc:
            raise ExplorerError({"query": f"Unknown user: {value!r}"}) from exc
        return lambda r: objects.user(r) == user
    if name == "type" and obj == "call":
        if value not in CALL_TYPES:
            raise ExplorerError({"query": f"Unknown call type: {value!r}"})
        kind = CALL_TYPES.index(value)
        return lambda r: org.calls.kind[r] == kind
    if name == "status_type" and obj == "opportunity":
        current = _current_status(org, "opportunity", until)
        statuses = org.opportunity_statuses
        return lambda r: statuses[current[r]].type == value
    raise ExplorerError({"query": f"Unsupported query field for {obj}: {name!r}"})


# ---------------------------------------------------------------- the report


def custom_report(org: Org, params: dict[str, str], offset: int, now: int, until: int) -> JSON:
    """``GET /report/custom/{org}/`` from raw query parameters, as of now.

    Args:
        org: The organization.
        params: The query parameters.
        offset: Seconds east of UTC (``X-TZ-Offset``): date buckets and rendering.
        now: Default ``end`` of a date axis.
        until: Now + 1 s: objects created at or after it do not exist yet.

    Raises:
        ExplorerError: Unknown fields, bad interval / transform / range, unsupported query.
    """
    errors: dict[str, str] = {}
    x = params.get("x") or "lead.date_created"
    y = params.get("y") or "lead.count"
    interval = params.get("interval") or "auto"
    transform = params.get("transform_y") or "sum"
    group_by = params.get("group_by") or None
    if group_by in ("none", "null"):
        group_by = None
    if x not in FIELD_BY_NAME:
        errors["x"] = f"Unknown field: {x!r}. GET /report/custom/fields/ lists the fields."
    elif FIELD_BY_NAME[x].type not in ("date", "number"):
        errors["x"] = f"{x!r} is a {FIELD_BY_NAME[x].type} field; x must be a date or number."
    if y not in FIELD_BY_NAME:
        errors["y"] = f"Unknown field: {y!r}. GET /report/custom/fields/ lists the fields."
    elif FIELD_BY_NAME[y].type != "number":
        errors["y"] = f"Only number fields can be used for y; {y!r} is a {FIELD_BY_NAME[y].type}."
    if transform not in TRANSFORMS:
        errors["transform_y"] = f"Must be one of {', '.join(TRANSFORMS)}."
    if group_by is not None and group_by != "user" and group_by not in FIELD_BY_NAME:
        errors["group_by"] = f"Unknown field: {group_by!r}."
    if errors:
        raise ExplorerError(errors)
    x_field = FIELD_BY_NAME[x]
    obj = x_field.object_type
    y_field = FIELD_BY_NAME[y]
    if y_field.object_type != obj and y != "lead.count":
        errors["y"] = f"{y!r} is not a field of {obj} (x is {x!r})."
    if group_by is not None and group_by != "user":
        spec = FIELD_BY_NAME[group_by]
        if spec.type not in ("choice", "user") or spec.object_type != obj:
            errors["group_by"] = f"Unknown group_by field for {obj}: {group_by!r}"
    if errors:
        raise ExplorerError(errors)

    created_rows = _objects(org, obj, "created")
    keep = _query_filter(org, obj, params.get("query"), until)
    if x_field.type == "date":
        objects = created_rows if x.endswith(".date_created") else _objects(org, obj, x)
        if interval not in INTERVALS:
            raise ExplorerError({"interval": f"Must be one of {', '.join(INTERVALS)}."})
        start = _instant_param(params, "start", offset, local_midnight_of(org.date_created, offset))
        end = _instant_param(params, "end", offset, now)
        if end <= start:
            raise ExplorerError({"end": "end must be after start."})
        if interval == "auto":
            days = (end - start) / DAY
            interval = "day" if days <= 62 else ("week" if days <= 366 else "month")
        edges = buckets(start, end, offset, interval)
        if len(edges) > MAX_BUCKETS:
            raise ExplorerError({"interval": "Too many buckets; choose a coarser interval."})
        shift = offset if objects.dated else 0
        if objects.dated:
            lo, hi = bisect_left(objects.ts, start + shift), bisect_left(objects.ts, end + shift)
        else:
            lo, hi = bisect_left(objects.ts, start), bisect_left(objects.ts, min(end, until))
        created = objects.created
        pairs = [
            (r, t - shift)
            for r, t in zip(objects.rows[lo:hi], objects.ts[lo:hi], strict=True)
            if created(r) < until
        ]
        rows = [r for r, _ in pairs]
        times = [t for _, t in pairs]
        starts = [b[1] for b in edges]
        labels = [_bucket_label(b[0], offset, interval) for b in edges]

        def position(k: int, r: int) -> int:
            return bisect_left(starts, times[k] + 1) - 1

        x_out: list[Any] = labels
        range_out: tuple[Any, Any] = (render_local(start, offset), render_local(end, offset))
    else:
        values = _numeric(org, x)
        visible = created_rows.rows[: bisect_left(created_rows.ts, until)]
        numbered = [(r, v) for r in visible if (v := values(r)) is not None]
        numbers = [v for _, v in numbered]
        lo_n = _int_param(params.get("start"), "start")
        hi_n = _int_param(params.get("end"), "end")
        low = lo_n if lo_n is not None else (min(numbers) if numbers else 0)
        high = hi_n if hi_n is not None else (max(numbers) + 1 if numbers else 1)
        if high <= low:
            raise ExplorerError({"end": "end must be greater than start."})
        width = _histogram_width(interval, high - low)
        if (high - low) / width > MAX_BUCKETS:
            raise ExplorerError({"interval": "Too many buckets; choose a larger interval."})
        first = (low // width) * width
        n_buckets = max(1, math.ceil((high - first) / width))
        x_out = [first + i * width for i in range(n_buckets)]
        keep_rows = [(r, v) for r, v in numbered if low <= v < high]
        rows = [r for r, _ in keep_rows]
        bucket_of = [(v - first) // width for _, v in keep_rows]

        def position(k: int, r: int) -> int:
            return int(bucket_of[k])

        interval = str(width)
        range_out = (low, high)

    y_value: Callable[[int], int | None] | None = None
    distinct_leads = y == "lead.count" and obj != "lead"
    is_count = y.endswith(".count")
    if not is_count:
        y_value = _numeric(org, y)
    group = _grouper(org, group_by, obj, created_rows, until) if group_by else None
    n = len(x_out)
    series: dict[str, tuple[str, list[list[int]], set[int]]] = {}
    for k, r in enumerate(rows):
        if keep is not None and not keep(r):
            continue
        key, label = group(r) if group else ("_all", "All")
        entry = series.get(key)
        if entry is None:
            entry = (label, [[] for _ in range(n)], set())
            series[key] = entry
        entry[2].add(r)
        if distinct_leads:
            value: int | None = created_rows.lead(r)
        elif y_value is None:
            value = 1
        else:
            value = y_value(r)
        if value is not None:
            entry[1][position(k, r)].append(value)
    if not series and group is None:
        series["_all"] = ("All", [[] for _ in range(n)], set())

    def aggregate(values: list[int]) -> int | float | None:
        if distinct_leads:
            return len(set(values))
        if is_count:
            return len(values)
        if transform == "sum":
            return sum(values)
        if not values:
            return None
        if transform == "avg":
            return round(sum(values) / len(values), 3)
        return min(values) if transform == "min" else max(values)

    out_series = []
    for key, (label, cells, members) in sorted(series.items(), key=lambda kv: kv[1][0]):
        out_series.append(
            {
                "key": key,
                "label": label,
                "count": len(members),
                "data": [{"x": x_out[i], "y": aggregate(cells[i])} for i in range(n)],
            }
        )
    return {
        "x": x,
        "y": y,
        "interval": interval,
        "transform_y": transform,
        "group_by": group_by,
        "start": range_out[0],
        "end": range_out[1],
        "series": out_series,
    }


def local_midnight_of(ts: int, offset: int) -> int:
    """Local midnight at or before an instant."""
    return ts - (ts + offset) % DAY


def _instant_param(params: dict[str, str], name: str, offset: int, default: int) -> int:
    raw = params.get(name)
    if not raw:
        return default
    try:
        return parse_instant(raw, offset)
    except ValueError as exc:
        raise ExplorerError({name: str(exc)}) from exc


def _bucket_label(label_ts: int, offset: int, interval: str) -> str:
    if interval == "hour":
        return render_local(label_ts, offset)
    return local_date(label_ts, offset).isoformat()


def _int_param(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except ValueError as exc:
        raise ExplorerError({name: f"Must be a number: {value!r}"}) from exc


def _histogram_width(interval: str, span: int) -> int:
    if interval == "auto":
        raw = max(1.0, span / 20)
        magnitude = 10 ** math.floor(math.log10(raw))
        for step in (1, 2, 5, 10):
            if step * magnitude >= raw:
                return int(step * magnitude)
        return int(10 * magnitude)
    try:
        width = int(interval)
    except ValueError as exc:
        raise ExplorerError({"interval": "Must be auto or an integer for a numeric x."}) from exc
    if width <= 0:
        raise ExplorerError({"interval": "Must be a positive integer."})
    return width
