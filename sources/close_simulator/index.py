"""Search structures over an Org's events, built lazily and cached per ``Org.version``.

* ``ActivityIndex`` — per metric atom (see ``metrics.ATOMS``), org-wide and per user: sorted
  timestamps plus prefix sums of the values, so any ``[start, end)`` count or sum is two
  bisections.
* ``StatusIndex`` — lead or opportunity status events (creation + changes) sorted by time,
  with per-status sorted entry / exit times: the number of objects in a status at any
  instant is two bisections; a window's events are a contiguous slice.
* ``FunnelIndex`` — per pipeline, its opportunities by creation time with their status paths.
* ``SentEmailIndex`` — sent emails by time with template, first-open and reply times.

Filters (a Smart View, a lead field, an opportunity user) give separate, cached indexes.

As of now: indexes hold every stored event, including those after the simulator's now;
reports clip every window at ``until`` (now + 1 s, exclusive). Two kinds of events are
counted at one instant but become true at a later one: a sent email's reply (it moves the
email from an ``…noreply`` atom to its ``…reply`` atom) and a win entered late (counted on
its ``date_won``). ``LateEvents`` keeps them sorted by the instant they become true, and
``LateEvents.pending(until)`` gives the corrections for one ``until`` (cached).
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .metrics import ATOM, ATOMS
from .org import ANNUALIZE, INDUSTRIES, LEAD_SOURCES, Org

T = TypeVar("T")

_CALL_IN = ATOM["call.inbound"]
_CALL_OUT = ATOM["call.outbound.regular"]
_SENT = ATOM["email.sent.manual.reply"]
_RECEIVED = ATOM["email.received"]
_OPEN_OTHER = ATOM["email.opened.other"]
_OPEN_SEQ = ATOM["email.opened.sequence"]
_SMS_SENT = ATOM["sms.sent"]
_SMS_RECEIVED = ATOM["sms.received"]
_LEAD_CREATED = ATOM["lead.created"]
_LEAD_CONTACTED = ATOM["lead.contacted"]
_OPP_CREATED = ATOM["opportunity.created"]
_OPP_CREATED_FOR = ATOM["opportunity.created_for"]
_WON = ATOM["opportunity.won.one_time"]
_LOST = ATOM["opportunity.lost.one_time"]
_NO_TIME = 1 << 62
NO_TIME = _NO_TIME
"""Stands for "never" in time columns (e.g. an email never opened)."""


def cached(org: Org, key: str, build: Callable[[], T]) -> T:
    """Returns ``org.cache[key]``, building it (once, under the org's lock) if missing."""
    value = org.cache.get(key)
    if value is None:
        with org.lock:
            value = org.cache.get(key)
            if value is None:
                value = build()
                org.cache[key] = value
    result: T = value
    return result


# ---------------------------------------------------------------- filters


@dataclass(frozen=True)
class LeadFilter:
    """Leads whose ``field`` (``source`` / ``industry``) equals ``value``; ``key`` names it in
    caches (a Smart View id or ``field=value``)."""

    key: str
    field: str
    value: str

    @classmethod
    def for_search(cls, org: Org, saved_search_id: str) -> LeadFilter:
        """The filter of a Smart View; an id the org does not have matches no lead."""
        search = org.saved_search(saved_search_id)
        if search is None:
            return cls(saved_search_id, "none", "")
        return cls(search.id, search.field, search.value)

    def mask(self, org: Org) -> bytearray:
        """1 per lead in the filter, 0 otherwise (cached)."""

        def build() -> bytearray:
            if self.field == "none":
                return bytearray(len(org.leads))
            names = LEAD_SOURCES if self.field == "source" else INDUSTRIES
            wanted = names.index(self.value)
            column = org.leads.source if self.field == "source" else org.leads.industry
            return bytearray(1 if v == wanted else 0 for v in column)

        return cached(org, f"leadmask:{self.field}={self.value}", build)


# ---------------------------------------------------------------- activity


class Series:
    """Sorted timestamps of one event stream with prefix sums of their values."""

    __slots__ = ("ts", "cum")

    def __init__(self, ts: array[int], cum: array[int] | None) -> None:
        self.ts = ts
        self.cum = cum

    def count_sum(self, start: int, end: int) -> tuple[int, int]:
        """Number of events and sum of values in ``[start, end)``."""
        if end <= start:
            return 0, 0
        ts = self.ts
        i = bisect_left(ts, start)
        j = bisect_left(ts, end)
        cum = self.cum
        return j - i, (cum[j] - cum[i]) if cum is not None else 0

    def count(self, start: int, end: int) -> int:
        """Number of events in ``[start, end)``."""
        if end <= start:
            return 0
        return bisect_left(self.ts, end) - bisect_left(self.ts, start)


_EMPTY = Series(array("q"), None)


def _series(ts: list[int], values: list[int] | None) -> Series:
    if not ts:
        return _EMPTY
    if values is None:
        ts.sort()
        return Series(array("q", ts), None)
    pairs = sorted(zip(ts, values, strict=True))
    cum = array("q", [0]) * (len(pairs) + 1)
    total = 0
    for k, (_, value) in enumerate(pairs, start=1):
        total += value
        cum[k] = total
    return Series(array("q", [p[0] for p in pairs]), cum)


class Pending:
    """Corrections for one ``until``: per atom, the events an ``ActivityIndex`` counts that
    are not true yet (``minus``) and where they count instead meanwhile (``plus``), each as
    org-wide and per-user series over the instant they are counted at."""

    __slots__ = ("minus_org", "minus_user", "plus_org", "plus_user")

    def __init__(self) -> None:
        self.minus_org: dict[int, Series] = {}
        self.minus_user: dict[int, dict[int, Series]] = {}
        self.plus_org: dict[int, Series] = {}
        self.plus_user: dict[int, dict[int, Series]] = {}

    def adjust(
        self,
        atoms: list[int],
        users: list[int] | None,
        start: int,
        end: int,
        counts: list[int],
        sums: list[int],
    ) -> None:
        """Applies the corrections of ``atoms`` over ``[start, end)`` to ``counts`` / ``sums``
        (org-wide when ``users`` is None, else summed over those users)."""
        for sign, org_side, user_side in (
            (-1, self.minus_org, self.minus_user),
            (1, self.plus_org, self.plus_user),
        ):
            for atom in atoms:
                if users is None:
                    series = org_side.get(atom)
                    if series is None:
                        continue
                    c, v = series.count_sum(start, end)
                else:
                    per_user = user_side.get(atom)
                    if per_user is None:
                        continue
                    c = v = 0
                    for u in users:
                        one = per_user.get(u)
                        if one is not None:
                            dc, dv = one.count_sum(start, end)
                            c += dc
                            v += dv
                counts[atom] += sign * c
                sums[atom] += sign * v


class LateEvents:
    """Events counted under atom ``src`` at instant ``at`` that are only true from ``due``
    on; until then they count under ``dst`` (``-1`` = nowhere)."""

    _KEEP = 8

    def __init__(self, rows: list[tuple[int, int, int, int, int, int]]) -> None:
        rows.sort()
        self.due = array("q", [r[0] for r in rows])
        self.at = array("q", [r[1] for r in rows])
        self.src = array("i", [r[2] for r in rows])
        self.dst = array("i", [r[3] for r in rows])
        self.user = array("i", [r[4] for r in rows])
        self.value = array("q", [r[5] for r in rows])
        self._cache: dict[int, Pending | None] = {}
        self._lock = threading.Lock()

    def pending(self, until: int) -> Pending | None:
        """Corrections for events counted before ``until`` but due at or after it."""
        first = bisect_left(self.due, until)
        if first == len(self.due):
            return None
        with self._lock:
            if until in self._cache:
                return self._cache[until]
        groups: dict[tuple[int, int, int], tuple[list[int], list[int]]] = {}
        for k in range(first, len(self.due)):
            at = self.at[k]
            if at >= until:
                continue
            value = self.value[k]
            for side, atom in ((0, self.src[k]), (1, self.dst[k])):
                if atom < 0:
                    continue
                for who in (-1, self.user[k]):
                    entry = groups.get((side, atom, who))
                    if entry is None:
                        entry = ([], [])
                        groups[(side, atom, who)] = entry
                    entry[0].append(at)
                    entry[1].append(value)
        result: Pending | None = None
        if groups:
            result = Pending()
            for (side, atom, who), (times, values) in groups.items():
                series = _series(times, values)
                if who < 0:
                    (result.minus_org if side == 0 else result.plus_org)[atom] = series
                else:
                    target = result.minus_user if side == 0 else result.plus_user
                    target.setdefault(atom, {})[who] = series
        with self._lock:
            if len(self._cache) >= self._KEEP:
                self._cache.pop(next(iter(self._cache)))
            self._cache[until] = result
        return result


_VALUED = frozenset(
    [ATOM[a] for a in ATOMS if a.startswith(("call.", "opportunity."))]
)  # atoms whose value is meaningful


class ActivityIndex:
    """Atom series org-wide (``org[atom]``) and per user (``user[atom][user]``), plus every
    event of a user regardless of atom (``any[user]``) for "had activity" checks, and the
    ``late`` events (replies, late-entered wins) whose atom depends on now."""

    def __init__(self, org: Org, lead_mask: bytearray | None = None) -> None:
        n_users = len(org.users)
        n_atoms = len(ATOMS)
        ts: list[list[list[int]]] = [[[] for _ in range(n_users)] for _ in range(n_atoms)]
        vals: list[list[list[int]]] = [[[] for _ in range(n_users)] for _ in range(n_atoms)]
        mask = lead_mask

        def add(atom: int, user: int, at: int, value: int) -> None:
            ts[atom][user].append(at)
            vals[atom][user].append(value)

        n_leads = len(org.leads)
        first_ts = array("q", [_NO_TIME]) * n_leads
        first_user = array("i", [-1]) * n_leads

        def contact(lead: int, user: int, at: int) -> None:
            if at < first_ts[lead]:
                first_ts[lead] = at
                first_user[lead] = user

        late: list[tuple[int, int, int, int, int, int]] = []

        calls = org.calls
        for lead, user, at, direction, kind, duration in zip(
            calls.lead,
            calls.user,
            calls.at,
            calls.direction,
            calls.kind,
            calls.duration,
            strict=True,
        ):
            if mask is not None and not mask[lead]:
                continue
            if direction:
                add(_CALL_OUT + kind, user, at, duration)
                contact(lead, user, at)
            else:
                add(_CALL_IN, user, at, duration)

        emails = org.emails
        first_open = array("q", [_NO_TIME]) * len(emails)
        for email, at in zip(org.email_opens.email, org.email_opens.at, strict=True):
            if at < first_open[email]:
                first_open[email] = at
        for k, (lead, user, at, direction, send_type, replied) in enumerate(
            zip(
                emails.lead,
                emails.user,
                emails.at,
                emails.direction,
                emails.send_type,
                emails.replied_at,
                strict=True,
            )
        ):
            if mask is not None and not mask[lead]:
                continue
            if direction:
                atom = _SENT + 2 * (send_type - 1)
                if replied >= 0:
                    add(atom, user, at, 0)
                    late.append((replied, at, atom, atom + 1, user, 0))
                else:
                    add(atom + 1, user, at, 0)
                contact(lead, user, at)
                opened = first_open[k]
                if opened != _NO_TIME:
                    add(_OPEN_SEQ if send_type == 3 else _OPEN_OTHER, user, opened, 0)
            else:
                add(_RECEIVED, user, at, 0)

        sms = org.sms
        for lead, user, at, direction in zip(
            sms.lead, sms.user, sms.at, sms.direction, strict=True
        ):
            if mask is not None and not mask[lead]:
                continue
            if direction:
                add(_SMS_SENT, user, at, 0)
                contact(lead, user, at)
            else:
                add(_SMS_RECEIVED, user, at, 0)

        leads = org.leads
        for lead, (at, creator) in enumerate(zip(leads.created_at, leads.created_by, strict=True)):
            if mask is not None and not mask[lead]:
                continue
            add(_LEAD_CREATED, creator, at, 0)
            if first_user[lead] >= 0:
                add(_LEAD_CONTACTED, first_user[lead], first_ts[lead], 0)

        opps = org.opportunities
        for lead, at, creator, user, value, period in zip(
            opps.lead,
            opps.created_at,
            opps.created_by,
            opps.user,
            opps.value,
            opps.period,
            strict=True,
        ):
            if mask is not None and not mask[lead]:
                continue
            annualized = value * ANNUALIZE[period]
            add(_OPP_CREATED, creator, at, annualized)
            add(_OPP_CREATED_FOR, user, at, annualized)

        types = [s.type for s in org.opportunity_statuses]
        changes = org.opportunity_status_changes
        for opp, at, new, effective in zip(
            changes.obj, changes.at, changes.new, changes.effective, strict=True
        ):
            kind = types[new]
            if kind == "active":
                continue
            if mask is not None and not mask[opps.lead[opp]]:
                continue
            atom = (_WON if kind == "won" else _LOST) + opps.period[opp]
            add(atom, opps.user[opp], effective, opps.value[opp])
            if effective < at:
                late.append((at, effective, atom, -1, opps.user[opp], opps.value[opp]))
        self.late = LateEvents(late)

        self.user: list[list[Series]] = []
        self.org: list[Series] = []
        for atom in range(n_atoms):
            valued = atom in _VALUED
            per_user = [
                _series(ts[atom][u], vals[atom][u] if valued else None) for u in range(n_users)
            ]
            self.user.append(per_user)
            all_ts = [t for u in range(n_users) for t in ts[atom][u]]
            all_vals = [v for u in range(n_users) for v in vals[atom][u]] if valued else None
            self.org.append(_series(all_ts, all_vals))
        self.any: list[Series] = [
            _series([t for atom in range(n_atoms) for t in ts[atom][u]], None)
            for u in range(n_users)
        ]


def activity_index(org: Org, lead_filter: LeadFilter | None = None) -> ActivityIndex:
    """The (cached) activity index, optionally restricted to a lead filter."""
    if lead_filter is None:
        return cached(org, "activity", lambda: ActivityIndex(org))
    return cached(
        org,
        f"activity:{lead_filter.field}={lead_filter.value}",
        lambda: ActivityIndex(org, lead_filter.mask(org)),
    )


# ---------------------------------------------------------------- statuses


class StatusIndex:
    """Status events of leads or opportunities sorted by time (creation: ``old == -1``)."""

    def __init__(
        self, ts: array[int], obj: array[int], old: array[int], new: array[int], n_statuses: int
    ) -> None:
        self.ts = ts
        self.obj = obj
        self.old = old
        self.new = new
        enter: list[list[int]] = [[] for _ in range(n_statuses)]
        leave: list[list[int]] = [[] for _ in range(n_statuses)]
        for at, before, after in zip(ts, old, new, strict=True):
            enter[after].append(at)
            if before >= 0:
                leave[before].append(at)
        self.enter = [array("q", e) for e in enter]
        self.leave = [array("q", e) for e in leave]

    def count_at(self, status: int, moment: int) -> int:
        """Objects in ``status`` after every event strictly before ``moment``."""
        return bisect_left(self.enter[status], moment) - bisect_left(self.leave[status], moment)

    def window(self, start: int, end: int) -> range:
        """Positions of the events in ``[start, end)``."""
        return range(bisect_left(self.ts, start), bisect_left(self.ts, end))

    def subset(self, keep: Callable[[int], bool], n_statuses: int) -> StatusIndex:
        """A new index with the events of the objects ``keep`` accepts."""
        rows = [i for i, o in enumerate(self.obj) if keep(o)]
        return StatusIndex(
            array("q", [self.ts[i] for i in rows]),
            array("i", [self.obj[i] for i in rows]),
            array("i", [self.old[i] for i in rows]),
            array("i", [self.new[i] for i in rows]),
            n_statuses,
        )


def _build_status_index(org: Org, kind: str) -> StatusIndex:
    if kind == "lead":
        created, initial = org.leads.created_at, org.leads.status
        changes = org.lead_status_changes
        n_statuses = len(org.lead_statuses)
    else:
        created, initial = org.opportunities.created_at, org.opportunities.status
        changes = org.opportunity_status_changes
        n_statuses = len(org.opportunity_statuses)
    n_created = len(created)
    keys = [at * 2 for at in created] + [at * 2 + 1 for at in changes.at]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    ts = array("q", [0]) * len(order)
    obj = array("i", [0]) * len(order)
    old = array("i", [0]) * len(order)
    new = array("i", [0]) * len(order)
    for pos, k in enumerate(order):
        if k < n_created:
            ts[pos], obj[pos], old[pos], new[pos] = created[k], k, -1, initial[k]
        else:
            c = k - n_created
            ts[pos], obj[pos] = changes.at[c], changes.obj[c]
            old[pos], new[pos] = changes.old[c], changes.new[c]
    return StatusIndex(ts, obj, old, new, n_statuses)


def status_index(
    org: Org,
    kind: str,
    lead_filter: LeadFilter | None = None,
    user: int | None = None,
) -> StatusIndex:
    """The (cached) status index of ``kind`` (lead / opportunity), optionally restricted to a
    lead filter and (opportunities) to one assigned user."""
    base = cached(org, f"status:{kind}", lambda: _build_status_index(org, kind))
    if lead_filter is None and user is None:
        return base
    n_statuses = len(org.lead_statuses if kind == "lead" else org.opportunity_statuses)
    mask = lead_filter.mask(org) if lead_filter is not None else None
    opp_lead = org.opportunities.lead
    opp_user = org.opportunities.user

    def keep(obj: int) -> bool:
        if kind == "lead":
            return mask is None or bool(mask[obj])
        if user is not None and opp_user[obj] != user:
            return False
        return mask is None or bool(mask[opp_lead[obj]])

    scope = f"{lead_filter.field}={lead_filter.value}" if lead_filter else ""
    key = f"status:{kind}:{scope}:{user}"
    return cached(org, key, lambda: base.subset(keep, n_statuses))


# ---------------------------------------------------------------- funnel


class FunnelIndex:
    """Per pipeline: its opportunities sorted by creation, with their ``(ts, status)`` paths
    (the first entry is the creation into the original status)."""

    def __init__(self, org: Org) -> None:
        events = status_index(org, "opportunity")
        paths: list[list[tuple[int, int]]] = [[] for _ in range(len(org.opportunities))]
        for at, obj, new in zip(events.ts, events.obj, events.new, strict=True):
            paths[obj].append((at, new))
        self.paths = paths
        opps = org.opportunities
        self.by_pipeline: list[list[int]] = [[] for _ in org.pipelines]
        for opp in sorted(range(len(opps)), key=opps.created_at.__getitem__):
            self.by_pipeline[opps.pipeline[opp]].append(opp)
        self.created: list[array[int]] = [
            array("q", [opps.created_at[o] for o in members]) for members in self.by_pipeline
        ]
        self.closed: list[array[int]] = []
        types = [s.type for s in org.opportunity_statuses]
        for members in self.by_pipeline:
            closed = array("q", [_NO_TIME]) * len(members)
            for k, opp in enumerate(members):
                path = paths[opp]
                if path and types[path[-1][1]] != "active":
                    closed[k] = path[-1][0]
            self.closed.append(closed)


def funnel_index(org: Org) -> FunnelIndex:
    """The (cached) funnel index."""
    return cached(org, "funnel", lambda: FunnelIndex(org))


# ---------------------------------------------------------------- sent emails


class SentEmailIndex:
    """Sent emails sorted by time: user, template (-1 none), first open (``NO_TIME`` =
    never) and reply time (``NO_TIME`` = no reply), so "opened / replied as of now" is one
    comparison per email."""

    def __init__(self, org: Org) -> None:
        emails = org.emails
        first_open = array("q", [_NO_TIME]) * len(emails)
        for email, at in zip(org.email_opens.email, org.email_opens.at, strict=True):
            if at < first_open[email]:
                first_open[email] = at
        rows = [k for k, d in enumerate(emails.direction) if d]
        rows.sort(key=emails.at.__getitem__)
        self.ts = array("q", [emails.at[k] for k in rows])
        self.user = array("i", [emails.user[k] for k in rows])
        self.template = array("i", [emails.template[k] for k in rows])
        self.opened_at = array("q", [first_open[k] for k in rows])
        replied = emails.replied_at
        self.replied_at = array("q", [replied[k] if replied[k] >= 0 else _NO_TIME for k in rows])

    def window(self, start: int, end: int) -> range:
        """Positions of the emails sent in ``[start, end)``."""
        return range(bisect_left(self.ts, start), bisect_left(self.ts, end))


def sent_email_index(org: Org) -> SentEmailIndex:
    """The (cached) sent-email index."""
    return cached(org, "sent_emails", lambda: SentEmailIndex(org))


def warm_up(org: Org) -> None:
    """Builds the unfiltered indexes now (so the first request is fast)."""
    activity_index(org)
    status_index(org, "lead")
    status_index(org, "opportunity")
    funnel_index(org)
    sent_email_index(org)
