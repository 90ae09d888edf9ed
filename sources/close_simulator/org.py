"""A synthetic Close organization: entities, columnar event tables and a seeded generator.

Everything a report needs is an *event* with a UTC timestamp (integer epoch seconds): leads
created (with their original status) and lead status changes; opportunities created and their
status changes (wins and losses are changes into a ``won`` / ``lost`` status); calls; emails
(sent and received, with the time of the reply and the opens of sent emails); SMS. Events are
stored column-wise in ``array`` columns (a large org holds millions of them); internal
references are integer positions (``user`` = index into ``Org.users``, ``status`` = index into
``Org.lead_statuses`` / ``Org.opportunity_statuses``, ``-1`` = none). Public ids (``user_…``,
``stat_…``, ``lead_…``) are derived from those positions.

``generate_org(seed, scale, anchor_date, horizon_days=0, late_wins=0.0)`` is deterministic:
the same arguments give an identical organization. With ``horizon_days`` the generator keeps
going past the anchor: those events are stored but stay invisible until the simulator's
"now" reaches them (every random draw is made whether or not its event is kept, so an org
with a horizon, seen at the default now, has exactly the events of the org without one).
The ``add_*`` methods mutate the history (late edits for lookback tests); each bumps
``Org.version`` so cached report indexes are rebuilt.

Delays (all documented in ``docs/simulator.md``): ``reply_delay`` / ``first_open_delay`` /
``reopen_delay`` (long-tailed mixtures) and ``stage_delay_days`` (opportunity stage moves).
"""

from __future__ import annotations

import math
import random
import threading
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

DAY = 86_400
HOUR = 3_600

SCALES: dict[str, tuple[int, int]] = {"small": (6, 60), "medium": (25, 365), "large": (200, 730)}
"""scale -> (users, days of history)."""

CALL_DIRECTIONS = ("inbound", "outbound")
CALL_TYPES = ("regular", "power_dialer", "predictive_dialer", "external")
EMAIL_DIRECTIONS = ("received", "sent")
SEND_TYPES = ("none", "manual", "bulk", "sequence")
"""How a sent email went out (``none`` for received emails)."""
SMS_DIRECTIONS = ("received", "sent")
VALUE_PERIODS = ("one_time", "monthly", "annual")
ANNUALIZE = (1, 12, 1)
"""Multiplier from ``value`` to annualized value, by value period index."""
LEAD_SOURCES = ("Website", "Referral", "Outbound", "Event", "Partner")
INDUSTRIES = ("SaaS", "Retail", "Healthcare", "Finance", "Manufacturing")
PLANS = ("Free", "Starter", "Growth", "Enterprise")
"""Choices of the lead custom field ``Plan`` (``lead.custom.Plan``)."""
NO_VALUE = -1
"""Stored for an empty custom field (``mrr``, ``seats``, ``plan``, ``renewal_day``)."""

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_EPOCH_DAY = date(1970, 1, 1)


def epoch(moment: datetime) -> int:
    """Integer UTC epoch seconds of an aware datetime (naive = UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def utc_datetime(ts: int) -> datetime:
    """Aware UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(ts, tz=UTC)


def iso_utc(ts: int) -> str:
    """Close-style ``2019-11-04T11:04:13.000000+00:00`` rendering of epoch seconds."""
    return utc_datetime(ts).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _encode(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


# ---------------------------------------------------------------- entities


@dataclass(frozen=True)
class User:
    """A member of the organization (active or deactivated)."""

    id: str
    first_name: str
    last_name: str
    email: str
    date_created: int
    deactivated_at: int | None
    utc_offset_hours: float
    """Home timezone used to place this user's events in the day (generation only)."""
    membership_id: str
    role_id: str

    @property
    def full_name(self) -> str:
        """First and last name."""
        return f"{self.first_name} {self.last_name}"

    @property
    def is_active(self) -> bool:
        """Whether the user is still an active member (never deactivated)."""
        return self.deactivated_at is None

    def active_at(self, ts: int) -> bool:
        """Whether the user was a member at ``ts``."""
        return self.date_created <= ts and (self.deactivated_at is None or ts < self.deactivated_at)


@dataclass(frozen=True)
class Group:
    """A group of users (usable in funnel ``users`` filters)."""

    id: str
    name: str
    member_ids: tuple[str, ...]


@dataclass(frozen=True)
class SavedSearch:
    """A lead Smart View: the leads whose ``field`` (``source`` / ``industry``) equals ``value``."""

    id: str
    name: str
    field: str
    value: str
    user_id: str | None
    is_shared: bool
    date_created: int


@dataclass(frozen=True)
class LeadStatus:
    """A lead status; a deleted one still appears in the history (and in status reports)."""

    id: str
    label: str
    is_deleted: bool = False
    deleted_at: int | None = None


@dataclass(frozen=True)
class OpportunityStatus:
    """An opportunity status of one pipeline; ``type`` is ``active``, ``won`` or ``lost``."""

    id: str
    label: str
    type: str
    pipeline_id: str


@dataclass(frozen=True)
class Pipeline:
    """A pipeline with its ordered statuses (active stages first, then won, then lost)."""

    id: str
    name: str
    status_ids: tuple[str, ...]
    date_created: int
    created_by: str


@dataclass(frozen=True)
class EmailTemplate:
    """An email template; ``user_id`` is its owner, ``is_shared`` whether the team sees it."""

    id: str
    name: str
    is_shared: bool
    user_id: str


@dataclass(frozen=True)
class Sequence:
    """An email sequence (workflow); its emails use ``template_ids``."""

    id: str
    name: str
    template_ids: tuple[str, ...]


# ---------------------------------------------------------------- columnar event tables


def _q() -> array[int]:
    return array("q")


def _i() -> array[int]:
    return array("i")


def _b() -> array[int]:
    return array("b")


@dataclass
class _Table:
    """Base of the columnar event tables: every column is an integer ``array``."""

    def __post_init__(self) -> None:
        self._first: array[int] = getattr(self, fields(self)[0].name)
        self._appenders = tuple(getattr(self, column.name).append for column in fields(self))

    def __len__(self) -> int:
        return len(self._first)

    def append(self, *values: int) -> int:
        """Appends one row (values in column order) and returns its position."""
        if len(values) != len(self._appenders):
            raise TypeError(f"expected {len(self._appenders)} values, got {len(values)}")
        for add, value in zip(self._appenders, values, strict=True):
            add(value)
        return len(self._first) - 1

    def columns(self) -> dict[str, array[int]]:
        """Column name -> array."""
        return {column.name: getattr(self, column.name) for column in fields(self)}


@dataclass
class LeadTable(_Table):
    """Leads: creation time, creator (user index), original status (lead status index), and
    the custom fields ``MRR`` (whole currency units), ``Seats``, ``Plan`` (index into
    ``PLANS``) and ``Renewal Date`` (days since 1970-01-01); ``NO_VALUE`` = empty."""

    created_at: array[int] = field(default_factory=_q)
    created_by: array[int] = field(default_factory=_i)
    status: array[int] = field(default_factory=_i)
    source: array[int] = field(default_factory=_b)
    industry: array[int] = field(default_factory=_b)
    mrr: array[int] = field(default_factory=_q)
    seats: array[int] = field(default_factory=_i)
    plan: array[int] = field(default_factory=_b)
    renewal_day: array[int] = field(default_factory=_i)


@dataclass
class StatusChangeTable(_Table):
    """Status changes of leads or opportunities (``obj`` = lead / opportunity index).

    ``at`` is when the change was made (and became visible); ``effective`` is the instant it
    is reported at: the same, except for wins entered late with an earlier ``date_won``."""

    obj: array[int] = field(default_factory=_i)
    at: array[int] = field(default_factory=_q)
    user: array[int] = field(default_factory=_i)
    old: array[int] = field(default_factory=_i)
    new: array[int] = field(default_factory=_i)
    effective: array[int] = field(default_factory=_q)


@dataclass
class OpportunityTable(_Table):
    """Opportunities: lead, pipeline, creator, assigned user, value in cents and its period."""

    lead: array[int] = field(default_factory=_i)
    pipeline: array[int] = field(default_factory=_b)
    created_at: array[int] = field(default_factory=_q)
    created_by: array[int] = field(default_factory=_i)
    user: array[int] = field(default_factory=_i)
    value: array[int] = field(default_factory=_q)
    period: array[int] = field(default_factory=_b)
    status: array[int] = field(default_factory=_i)


@dataclass
class CallTable(_Table):
    """Calls: ``direction`` index into CALL_DIRECTIONS, ``kind`` into CALL_TYPES, seconds."""

    lead: array[int] = field(default_factory=_i)
    user: array[int] = field(default_factory=_i)
    at: array[int] = field(default_factory=_q)
    direction: array[int] = field(default_factory=_b)
    kind: array[int] = field(default_factory=_b)
    duration: array[int] = field(default_factory=_i)


@dataclass
class EmailTable(_Table):
    """Emails: direction, send type, template / sequence (-1 = none), reply time (-1 = none;
    the reply may lie after the simulator's now: it counts only once now reaches it)."""

    lead: array[int] = field(default_factory=_i)
    user: array[int] = field(default_factory=_i)
    at: array[int] = field(default_factory=_q)
    direction: array[int] = field(default_factory=_b)
    send_type: array[int] = field(default_factory=_b)
    template: array[int] = field(default_factory=_i)
    sequence: array[int] = field(default_factory=_i)
    replied_at: array[int] = field(default_factory=_q)


@dataclass
class EmailOpenTable(_Table):
    """Open events of sent emails (several per email possible)."""

    email: array[int] = field(default_factory=_i)
    at: array[int] = field(default_factory=_q)


@dataclass
class SmsTable(_Table):
    """SMS messages: direction index into SMS_DIRECTIONS."""

    lead: array[int] = field(default_factory=_i)
    user: array[int] = field(default_factory=_i)
    at: array[int] = field(default_factory=_q)
    direction: array[int] = field(default_factory=_b)


# ---------------------------------------------------------------- the organization


@dataclass
class Org:
    """A synthetic Close organization and its full event history.

    History covers ``[history_start, history_end)`` (UTC epoch seconds); ``history_end`` is
    midnight UTC after ``anchor_date``. Reports treat ``anchor_date + 1`` as "today" unless
    the simulator is given another now. Events up to ``generated_until`` (``history_end`` +
    ``horizon_days``) are stored; the ones after the simulator's now are invisible.
    """

    id: str
    name: str
    seed: int
    scale: str
    anchor_date: date
    date_created: int
    history_start: int
    history_end: int
    users: list[User]
    groups: list[Group]
    saved_searches: list[SavedSearch]
    lead_statuses: list[LeadStatus]
    pipelines: list[Pipeline]
    opportunity_statuses: list[OpportunityStatus]
    templates: list[EmailTemplate]
    sequences: list[Sequence]
    leads: LeadTable = field(default_factory=LeadTable)
    lead_status_changes: StatusChangeTable = field(default_factory=StatusChangeTable)
    opportunities: OpportunityTable = field(default_factory=OpportunityTable)
    opportunity_status_changes: StatusChangeTable = field(default_factory=StatusChangeTable)
    calls: CallTable = field(default_factory=CallTable)
    emails: EmailTable = field(default_factory=EmailTable)
    email_opens: EmailOpenTable = field(default_factory=EmailOpenTable)
    sms: SmsTable = field(default_factory=SmsTable)
    horizon_days: int = 0
    generated_until: int = 0
    """End (exclusive) of the stored events: ``history_end`` + ``horizon_days`` days."""
    late_wins: float = 0.0
    """Fraction of generated wins entered late, with an earlier ``date_won``."""
    version: int = 0
    """Bumped by every mutation; report indexes are cached per version."""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Report indexes (owned by ``reports``); cleared on every mutation."""

    # ------------------------------------------------------------ ids and lookups

    @property
    def tag(self) -> str:
        """Short org-specific code embedded in derived object ids."""
        return self.id[5:13]

    def lead_id(self, index: int) -> str:
        """Public id of the lead at ``index``."""
        return f"lead_{self.tag}{_encode(index, 6)}"

    def opportunity_id(self, index: int) -> str:
        """Public id of the opportunity at ``index``."""
        return f"oppo_{self.tag}{_encode(index, 6)}"

    def activity_id(self, kind: str, index: int) -> str:
        """Public id of an activity (``kind`` ∈ call/email/sms) at ``index``."""
        code = {"call": "c", "email": "e", "sms": "s"}[kind]
        return f"acti_{self.tag}{code}{_encode(index, 6)}"

    def user_index(self, user_id: str) -> int:
        """Position of a user id in ``users`` (KeyError if unknown)."""
        return self._positions("users", [u.id for u in self.users])[user_id]

    def lead_status_index(self, status_id: str) -> int:
        """Position of a lead status id in ``lead_statuses``."""
        return self._positions("lead_statuses", [s.id for s in self.lead_statuses])[status_id]

    def opportunity_status_index(self, status_id: str) -> int:
        """Position of an opportunity status id in ``opportunity_statuses``."""
        ids = [s.id for s in self.opportunity_statuses]
        return self._positions("opportunity_statuses", ids)[status_id]

    def pipeline_index(self, pipeline_id: str) -> int:
        """Position of a pipeline id in ``pipelines``."""
        return self._positions("pipelines", [p.id for p in self.pipelines])[pipeline_id]

    def template_index(self, template_id: str) -> int:
        """Position of a template id in ``templates``."""
        return self._positions("templates", [t.id for t in self.templates])[template_id]

    def sequence_index(self, sequence_id: str) -> int:
        """Position of a sequence id in ``sequences``."""
        return self._positions("sequences", [s.id for s in self.sequences])[sequence_id]

    def index_of_lead(self, lead_id: str) -> int:
        """Position of a lead id (``lead_<tag><n>``) in ``leads``."""
        return self._decode(lead_id, "lead_", len(self.leads))

    def index_of_opportunity(self, opportunity_id: str) -> int:
        """Position of an opportunity id in ``opportunities``."""
        return self._decode(opportunity_id, "oppo_", len(self.opportunities))

    def _decode(self, object_id: str, prefix: str, size: int) -> int:
        head = prefix + self.tag
        if not object_id.startswith(head):
            raise KeyError(object_id)
        number = 0
        for char in object_id[len(head) :]:
            number = number * 62 + _ALPHABET.index(char)
        if number >= size:
            raise KeyError(object_id)
        return number

    def _positions(self, name: str, ids: list[str]) -> dict[str, int]:
        key = f"positions:{name}"
        cached = self.cache.get(key)
        if cached is None or len(cached) != len(ids):
            cached = {object_id: i for i, object_id in enumerate(ids)}
            self.cache[key] = cached
        result: dict[str, int] = cached
        return result

    def pipeline_statuses(self, pipeline_index: int) -> list[int]:
        """Opportunity status indexes of a pipeline, in pipeline order."""
        pipeline = self.pipelines[pipeline_index]
        return [self.opportunity_status_index(s) for s in pipeline.status_ids]

    def saved_search(self, saved_search_id: str) -> SavedSearch | None:
        """The saved search with this id, or None."""
        for search in self.saved_searches:
            if search.id == saved_search_id:
                return search
        return None

    def event_count(self) -> int:
        """Number of events of every kind (rows of all event tables)."""
        return (
            len(self.leads)
            + len(self.lead_status_changes)
            + len(self.opportunities)
            + len(self.opportunity_status_changes)
            + len(self.calls)
            + len(self.emails)
            + len(self.email_opens)
            + len(self.sms)
        )

    # ------------------------------------------------------------ history helpers

    def _status_at(self, changes: StatusChangeTable, obj: int, initial: int, ts: int) -> int:
        status, best = initial, -1
        for i, owner in enumerate(changes.obj):
            if owner == obj and changes.at[i] <= ts and changes.at[i] >= best:
                status, best = changes.new[i], changes.at[i]
        return status

    def lead_status_at(self, lead: int, ts: int) -> int:
        """Lead status index of lead ``lead`` just after ``ts`` (slow: scans the changes)."""
        return self._status_at(self.lead_status_changes, lead, self.leads.status[lead], ts)

    def opportunity_status_at(self, opportunity: int, ts: int) -> int:
        """Opportunity status index just after ``ts`` (slow: scans the changes)."""
        initial = self.opportunities.status[opportunity]
        return self._status_at(self.opportunity_status_changes, opportunity, initial, ts)

    def _latest_lead_before(self, ts: int) -> int:
        best, best_at = -1, -1
        for i, created in enumerate(self.leads.created_at):
            if created <= ts and created > best_at:
                best, best_at = i, created
        if best < 0:
            raise ValueError("no lead exists at that time; pass lead_id")
        return best

    # ------------------------------------------------------------ mutations (late data)

    def touch(self) -> None:
        """Marks the history as changed: bumps ``version`` and drops cached indexes."""
        with self.lock:
            self.version += 1
            self.cache.clear()

    def __post_init__(self) -> None:
        if not self.generated_until:
            self.generated_until = self.history_end

    def _check_time(self, at: datetime) -> int:
        ts = epoch(at)
        if not self.history_start <= ts < self.generated_until:
            raise ValueError(
                f"{at} is outside the stored events [{iso_utc(self.history_start)}, "
                f"{iso_utc(self.generated_until)})"
            )
        return ts

    def _lead(self, lead_id: str | None, ts: int) -> int:
        return self._latest_lead_before(ts) if lead_id is None else self.index_of_lead(lead_id)

    def add_call(
        self,
        user_id: str,
        at: datetime,
        *,
        direction: str = "outbound",
        call_type: str = "regular",
        duration: int = 60,
        lead_id: str | None = None,
    ) -> str:
        """Adds a call; ``lead_id`` defaults to the latest lead created before ``at``.

        Returns:
            The new call's activity id.
        """
        ts = self._check_time(at)
        row = self.calls.append(
            self._lead(lead_id, ts),
            self.user_index(user_id),
            ts,
            CALL_DIRECTIONS.index(direction),
            CALL_TYPES.index(call_type),
            int(duration),
        )
        self.touch()
        return self.activity_id("call", row)

    def add_email(
        self,
        user_id: str,
        at: datetime,
        *,
        direction: str = "sent",
        send_type: str = "manual",
        template_id: str | None = None,
        sequence_id: str | None = None,
        replied_at: datetime | None = None,
        opened_at: list[datetime] | None = None,
        lead_id: str | None = None,
    ) -> str:
        """Adds an email (``direction`` sent/received; ``send_type`` manual/bulk/sequence).

        A reply time adds the ``has_reply`` flag only (add the reply itself as a received
        email if you want it counted as received). ``opened_at`` adds open events.

        Returns:
            The new email's activity id.
        """
        ts = self._check_time(at)
        sent = direction == "sent"
        reply = -1 if replied_at is None or not sent else epoch(replied_at)
        row = self.emails.append(
            self._lead(lead_id, ts),
            self.user_index(user_id),
            ts,
            EMAIL_DIRECTIONS.index(direction),
            SEND_TYPES.index(send_type) if sent else 0,
            -1 if template_id is None else self.template_index(template_id),
            -1 if sequence_id is None else self.sequence_index(sequence_id),
            reply,
        )
        for moment in opened_at or []:
            self.email_opens.append(row, epoch(moment))
        self.touch()
        return self.activity_id("email", row)

    def add_sms(
        self, user_id: str, at: datetime, *, direction: str = "sent", lead_id: str | None = None
    ) -> str:
        """Adds an SMS (``direction`` sent/received); returns its activity id."""
        ts = self._check_time(at)
        row = self.sms.append(
            self._lead(lead_id, ts),
            self.user_index(user_id),
            ts,
            SMS_DIRECTIONS.index(direction),
        )
        self.touch()
        return self.activity_id("sms", row)

    def add_lead(
        self,
        user_id: str,
        at: datetime,
        *,
        status_id: str | None = None,
        source: str = "Website",
        industry: str = "SaaS",
        mrr: int | None = None,
        seats: int | None = None,
        plan: str | None = None,
        renewal_date: date | None = None,
    ) -> str:
        """Adds a lead created by ``user_id`` (original status defaults to the first one);
        ``mrr`` / ``seats`` / ``plan`` / ``renewal_date`` are its custom fields (empty when
        None)."""
        ts = self._check_time(at)
        status = 0 if status_id is None else self.lead_status_index(status_id)
        row = self.leads.append(
            ts,
            self.user_index(user_id),
            status,
            LEAD_SOURCES.index(source),
            INDUSTRIES.index(industry),
            NO_VALUE if mrr is None else int(mrr),
            NO_VALUE if seats is None else int(seats),
            NO_VALUE if plan is None else PLANS.index(plan),
            NO_VALUE if renewal_date is None else (renewal_date - _EPOCH_DAY).days,
        )
        self.touch()
        return self.lead_id(row)

    def _insert_change(
        self,
        changes: StatusChangeTable,
        obj: int,
        ts: int,
        user: int,
        old: int,
        new: int,
        effective: int | None = None,
    ) -> None:
        # the next change of this object (if any) now starts from ``new``
        nxt, nxt_at = -1, None
        for i, owner in enumerate(changes.obj):
            if owner == obj and changes.at[i] > ts and (nxt_at is None or changes.at[i] < nxt_at):
                nxt, nxt_at = i, changes.at[i]
        if nxt >= 0:
            changes.old[nxt] = new
        changes.append(obj, ts, user, old, new, ts if effective is None else effective)

    def add_lead_status_change(
        self, lead_id: str, at: datetime, status_id: str, *, user_id: str | None = None
    ) -> None:
        """Changes a lead's status at ``at`` (keeps the chain consistent: a later change of
        the same lead then starts from the new status)."""
        ts = self._check_time(at)
        lead = self.index_of_lead(lead_id)
        if ts < self.leads.created_at[lead]:
            raise ValueError("status change before the lead was created")
        user = self.leads.created_by[lead] if user_id is None else self.user_index(user_id)
        old = self.lead_status_at(lead, ts)
        new = self.lead_status_index(status_id)
        self._insert_change(self.lead_status_changes, lead, ts, user, old, new)
        self.touch()

    def add_opportunity(
        self,
        user_id: str,
        at: datetime,
        *,
        pipeline_id: str | None = None,
        value: int = 100_000,
        value_period: str = "one_time",
        status_id: str | None = None,
        created_by: str | None = None,
        lead_id: str | None = None,
    ) -> str:
        """Adds an opportunity assigned to ``user_id`` (created by ``created_by`` or them).

        ``status_id`` defaults to the pipeline's first stage; ``value`` is in cents.
        """
        ts = self._check_time(at)
        pipeline = 0 if pipeline_id is None else self.pipeline_index(pipeline_id)
        status = (
            self.pipeline_statuses(pipeline)[0]
            if status_id is None
            else self.opportunity_status_index(status_id)
        )
        row = self.opportunities.append(
            self._lead(lead_id, ts),
            pipeline,
            ts,
            self.user_index(created_by or user_id),
            self.user_index(user_id),
            int(value),
            VALUE_PERIODS.index(value_period),
            status,
        )
        self.touch()
        return self.opportunity_id(row)

    def add_opportunity_status_change(
        self,
        opportunity_id: str,
        at: datetime,
        status_id: str,
        *,
        user_id: str | None = None,
        date_won: datetime | None = None,
    ) -> None:
        """Changes an opportunity's status at ``at`` (a win or loss when the new status is of
        type won / lost); a later change of the same opportunity then starts from it.

        ``date_won`` (wins only, at or before ``at``) backdates the win: the activity report
        counts it on that instant, but only once now has reached ``at``.
        """
        ts = self._check_time(at)
        opp = self.index_of_opportunity(opportunity_id)
        if ts < self.opportunities.created_at[opp]:
            raise ValueError("status change before the opportunity was created")
        user = self.opportunities.user[opp] if user_id is None else self.user_index(user_id)
        old = self.opportunity_status_at(opp, ts)
        new = self.opportunity_status_index(status_id)
        effective = ts
        if date_won is not None:
            if self.opportunity_statuses[new].type != "won":
                raise ValueError("date_won is only for a change into a won status")
            effective = epoch(date_won)
            if not self.opportunities.created_at[opp] <= effective <= ts:
                raise ValueError("date_won must lie between the creation and the change")
        self._insert_change(self.opportunity_status_changes, opp, ts, user, old, new, effective)
        self.touch()


# ---------------------------------------------------------------- generator

# fmt: off
_FIRST_NAMES = (
    "Ava", "Liam", "Noah", "Emma", "Olivia", "Mia", "Lucas", "Sofia", "Ethan", "Chloe", "Mason",
    "Isla", "Leo", "Zoe", "Ella", "Jack", "Nora", "Owen", "Ruby", "Eli", "Hana", "Omar", "Priya",
    "Diego", "Yuki", "Lena", "Ivan", "Amara", "Kofi", "Sara", "Tom", "Nina", "Raj", "Mei", "Luis",
)
_LAST_NAMES = (
    "Smith", "Johnson", "Garcia", "Miller", "Davis", "Lopez", "Wilson", "Anderson", "Thomas",
    "Taylor", "Moore", "Martin", "Lee", "Walker", "Hall", "Young", "King", "Wright", "Scott",
    "Green", "Baker", "Adams", "Nelson", "Carter", "Mitchell", "Perez", "Roberts", "Turner",
    "Phillips", "Campbell", "Parker", "Evans", "Edwards", "Collins", "Stewart", "Morris", "Rogers",
    "Reed", "Cook",
)
# fmt: on
_USER_OFFSETS = (-8.0, -7.0, -6.0, -5.0, -5.0, -5.0, -4.0, 0.0, 1.0, 5.5)
_HOUR_WEIGHTS = (
    0, 0, 0, 0, 0, 0, 0.2, 1, 4, 8, 10, 9, 6, 7, 9, 9, 8, 5, 2, 1.2, 0.8, 0.5, 0.3, 0.1
)  # fmt: skip
_CUM_HOURS: list[float] = []
_acc = 0.0
for _w in _HOUR_WEIGHTS:
    _acc += _w
    _CUM_HOURS.append(_acc)
_CUM_HOURS = [c / _acc for c in _CUM_HOURS]
del _acc, _w

# lead statuses (index: label)
_LEAD_STATUS_LABELS = (
    "Potential",
    "Interested",
    "Qualified",
    "Customer",
    "Not Interested",
    "Bad Fit",
    "Nurture (legacy)",
)
_POT, _INT, _QUAL, _CUST, _NOTI, _BAD, _NURT = range(7)
_LEAD_MOVES: dict[int, tuple[tuple[int, float], ...]] = {
    # status -> (next status, probability); the rest of the mass = no further change
    _POT: ((_INT, 0.40), (_NOTI, 0.14), (_BAD, 0.08), (_NURT, 0.12)),
    _INT: ((_QUAL, 0.50), (_NOTI, 0.22), (_POT, 0.05)),
    _QUAL: ((_CUST, 0.38), (_NOTI, 0.18), (_INT, 0.10)),
    _NURT: ((_POT, 0.5), (_INT, 0.3), (_NOTI, 0.2)),
    _NOTI: ((_POT, 0.10),),
    _CUST: ((_NOTI, 0.03),),
    _BAD: (),
}

# pipelines: (name, active stages, won label, lost labels, p_lose per stage, share)
_PIPELINES: tuple[tuple[str, tuple[str, ...], str, tuple[str, ...], float, float], ...] = (
    ("Sales", ("Qualification", "Demo", "Proposal", "Negotiation"), "Won",
     ("Lost", "No Decision"), 0.22, 0.62),
    ("Renewals", ("Upcoming", "In Discussion"), "Renewed", ("Churned",), 0.18, 0.24),
    ("Partnerships", ("Intro", "Evaluation", "Contracting"), "Signed", ("Dropped",), 0.28, 0.14),
)  # fmt: skip

_TEMPLATES = (
    # name, shared, kind (manual / bulk / sequence)
    ("Intro email", True, "sequence"),
    ("Follow-up 1", True, "sequence"),
    ("Follow-up 2", True, "sequence"),
    ("Breakup email", True, "sequence"),
    ("Demo recap", True, "manual"),
    ("Pricing overview", True, "manual"),
    ("Quick question", False, "manual"),
    ("Monthly newsletter", True, "bulk"),
    ("Webinar invite", True, "bulk"),
    ("Renewal reminder", True, "sequence"),
    ("Case study", False, "manual"),
)


def reply_delay(rng: random.Random) -> int:
    """Seconds from a sent email to its reply: 5 minutes plus a mixture of 60 % Exp(mean 2 h),
    28 % Exp(mean 30 h) and 12 % 3 days + Exp(mean 14 days), capped at 120 days."""
    r = rng.random()
    if r < 0.60:
        hours = rng.expovariate(1 / 2.0)
    elif r < 0.88:
        hours = rng.expovariate(1 / 30.0)
    else:
        hours = 72.0 + rng.expovariate(1 / (14 * 24.0))
    return 300 + int(min(hours, 120 * 24.0) * HOUR)


def first_open_delay(rng: random.Random) -> int:
    """Seconds from a sent email to its first open: 30 s plus a mixture of 70 % Exp(mean 1 h),
    22 % Exp(mean 20 h) and 8 % 2 days + Exp(mean 10 days), capped at 120 days."""
    r = rng.random()
    if r < 0.70:
        hours = rng.expovariate(1.0)
    elif r < 0.92:
        hours = rng.expovariate(1 / 20.0)
    else:
        hours = 48.0 + rng.expovariate(1 / (10 * 24.0))
    return 30 + int(min(hours, 120 * 24.0) * HOUR)


def reopen_delay(rng: random.Random) -> int:
    """Seconds between two opens of one email: 60 s + Exp(mean 20 h)."""
    return 60 + int(rng.expovariate(1 / 20.0) * HOUR)


def stage_delay_days(rng: random.Random) -> float:
    """Days until an opportunity's next status change: 85 % Exp(mean 6 days), 15 % Exp(mean
    30 days) (a stalled deal); the change is then placed in the assigned user's working
    hours on that day."""
    mean = 6.0 if rng.random() < 0.85 else 30.0
    return rng.expovariate(1 / mean)


def late_win_backdating(rng: random.Random) -> int:
    """Seconds a late-entered win's ``date_won`` precedes the change: 1 day + Exp(mean 10
    days), capped at 90 days (clipped to the previous status event)."""
    return int(min(1.0 + rng.expovariate(1 / 10.0), 90.0) * DAY)


@dataclass
class _UserPlan:
    index: int
    offset_s: int
    calls: float
    emails: float
    sms: float
    leads: float
    book: list[int] = field(default_factory=list)


class _Generator:
    """Builds an Org day by day; future events (status paths, replies, opens) are scheduled
    when their cause happens. Every random number is drawn whether or not its event is kept
    (an event is kept when it falls before ``gen_end``), so the events before the anchor do
    not depend on the horizon."""

    def __init__(
        self, seed: int, scale: str, anchor: date, horizon_days: int = 0, late_wins: float = 0.0
    ) -> None:
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
        if horizon_days < 0:
            raise ValueError(f"horizon_days must be >= 0, got {horizon_days}")
        if not 0.0 <= late_wins <= 1.0:
            raise ValueError(f"late_wins must be a fraction in [0, 1], got {late_wins}")
        self.seed = seed
        self.scale = scale
        self.anchor = anchor
        self.horizon_days = int(horizon_days)
        self.late_wins = float(late_wins)
        self.n_users, self.days = SCALES[scale]
        self.rng = random.Random(f"close-sim:{seed}:{scale}:{anchor.isoformat()}")
        self.id_rng = random.Random(f"close-sim-ids:{seed}:{scale}")
        self.custom_rng = random.Random(f"close-sim-custom:{seed}:{scale}:{anchor.isoformat()}")
        self.win_rng = random.Random(f"close-sim-wins:{seed}:{scale}:{anchor.isoformat()}")
        end_day = datetime(anchor.year, anchor.month, anchor.day, tzinfo=UTC) + timedelta(days=1)
        self.end = epoch(end_day)
        self.start = self.end - self.days * DAY
        self.gen_end = self.end + self.horizon_days * DAY

    # ids ------------------------------------------------------------
    def new_id(self, prefix: str, length: int = 43) -> str:
        return prefix + "".join(self.id_rng.choice(_ALPHABET) for _ in range(length))

    # sampling helpers -------------------------------------------------
    def poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        if lam > 30:
            return max(0, int(self.rng.gauss(lam, math.sqrt(lam)) + 0.5))
        limit, k, p = math.exp(-lam), 0, self.rng.random()
        while p > limit:
            k += 1
            p *= self.rng.random()
        return k

    def time_of_day(self) -> int:
        hour = bisect_right(_CUM_HOURS, self.rng.random())
        return min(hour, 23) * HOUR + int(self.rng.random() * HOUR)

    def work_time_after(self, ts: int, user_offset: int, mean_days: float) -> int:
        """A working-hours moment about ``mean_days`` after ``ts`` (local to the user)."""
        delay = self.rng.expovariate(1.0 / mean_days) if mean_days > 0 else 0.0
        return self.work_time_at(ts, user_offset, delay)

    def work_time_at(self, ts: int, user_offset: int, delay_days: float) -> int:
        """A working-hours moment on the user's local day ``delay_days`` after ``ts``."""
        target = ts + int(delay_days * DAY)
        local_day = (target + user_offset) // DAY
        candidate = local_day * DAY - user_offset + self.time_of_day()
        if candidate <= ts:
            candidate = ts + 60 + int(self.rng.random() * 4 * HOUR)
        return candidate

    # build ------------------------------------------------------------
    def build(self) -> Org:
        rng = self.rng
        org_id = self.new_id("orga_")
        created = self.start - 21 * DAY
        users = self._users(created)
        groups = self._groups(users)
        lead_statuses = [
            LeadStatus(self.new_id("stat_"), label) for label in _LEAD_STATUS_LABELS[:-1]
        ]
        self.nurture_deleted_at = self.start + int(self.days * 0.45) * DAY + 15 * HOUR
        lead_statuses.append(
            LeadStatus(
                self.new_id("stat_"),
                _LEAD_STATUS_LABELS[-1],
                is_deleted=True,
                deleted_at=self.nurture_deleted_at,
            )
        )
        pipelines, opp_statuses = self._pipelines(users, created)
        templates, sequences = self._templates(users)
        searches = self._saved_searches(users, created)
        org = Org(
            id=org_id,
            name=f"Simulated Sales Co. {self.seed}",
            seed=self.seed,
            scale=self.scale,
            anchor_date=self.anchor,
            date_created=created,
            history_start=self.start,
            history_end=self.end,
            users=users,
            groups=groups,
            saved_searches=searches,
            lead_statuses=lead_statuses,
            pipelines=pipelines,
            opportunity_statuses=opp_statuses,
            templates=templates,
            sequences=sequences,
            horizon_days=self.horizon_days,
            generated_until=self.gen_end,
            late_wins=self.late_wins,
        )
        self.org = org
        self._plan_structures()
        plans = [
            _UserPlan(
                index=i,
                offset_s=int(u.utc_offset_hours * HOUR),
                calls=rng.uniform(0.6, 1.5),
                emails=rng.uniform(0.6, 1.5),
                sms=rng.uniform(0.5, 1.6),
                leads=rng.uniform(0.6, 1.4),
            )
            for i, u in enumerate(users)
        ]
        self.plans = plans
        self._import_leads(plans)
        for day in range(self.days + self.horizon_days):
            day_start = self.start + day * DAY
            weekday = (self.anchor - timedelta(days=self.days - 1 - day)).weekday()
            level = 1.0 if weekday < 5 else (0.3 if weekday == 5 else 0.2)
            self.lead_floor = len(org.leads)
            for plan in plans:
                user = users[plan.index]
                midday = day_start + 12 * HOUR - plan.offset_s
                if not user.active_at(midday):
                    continue
                self._user_day(plan, day_start, level)
        return org

    def _users(self, created: int) -> list[User]:
        rng = self.rng
        users: list[User] = []
        used: set[tuple[str, str]] = set()
        n = self.n_users
        late_joiners = set(range(n - max(0, n // 10), n)) if n > 6 else set()
        inactive = {n - 1 - len(late_joiners), n - 2 - len(late_joiners)}
        for i in range(n):
            while True:
                first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
                if (first, last) not in used:
                    used.add((first, last))
                    break
            joined = created + int(rng.random() * 5 * DAY)
            if i in late_joiners:
                joined = self.start + int(rng.uniform(0.2, 0.7) * self.days) * DAY + 14 * HOUR
            deactivated = None
            if i in inactive:
                share = 0.35 if i == min(inactive) else 0.72
                deactivated = self.start + int(self.days * share) * DAY + 17 * HOUR
            offset = -5.0 if i == 0 else rng.choice(_USER_OFFSETS)
            users.append(
                User(
                    id=self.new_id("user_"),
                    first_name=first,
                    last_name=last,
                    email=f"{first.lower()}.{last.lower()}@simulated-sales.example",
                    date_created=joined,
                    deactivated_at=deactivated,
                    utc_offset_hours=offset,
                    membership_id=self.new_id("memb_"),
                    role_id="role_admin" if i == 0 else "role_user",
                )
            )
        return users

    def _groups(self, users: list[User]) -> list[Group]:
        n = len(users)
        cut = max(2, n // 3)
        specs = (
            ("Account Executives", [u.id for u in users[:cut]]),
            ("SDRs", [u.id for u in users[cut : 2 * cut]]),
            ("Customer Success", [u.id for u in users[2 * cut :]]),
            ("Managers", [users[0].id] + ([users[1].id] if n > 1 else [])),
        )
        return [Group(self.new_id("group_", 22), name, tuple(members)) for name, members in specs]

    def _pipelines(
        self, users: list[User], created: int
    ) -> tuple[list[Pipeline], list[OpportunityStatus]]:
        count = 2 if self.scale == "small" else 3
        pipelines: list[Pipeline] = []
        statuses: list[OpportunityStatus] = []
        self.pipeline_shares: list[float] = []
        self.pipeline_lose: list[float] = []
        for name, stages, won, losts, p_lose, share in _PIPELINES[:count]:
            pid = self.new_id("pipe_", 22)
            ids: list[str] = []
            for label, kind in (
                [(s, "active") for s in stages]
                + [(won, "won")]
                + [(lost, "lost") for lost in losts]
            ):
                status = OpportunityStatus(self.new_id("stat_"), label, kind, pid)
                statuses.append(status)
                ids.append(status.id)
            pipelines.append(Pipeline(pid, name, tuple(ids), created + HOUR, users[0].id))
            self.pipeline_shares.append(share)
            self.pipeline_lose.append(p_lose)
        total = sum(self.pipeline_shares)
        self.pipeline_shares = [s / total for s in self.pipeline_shares]
        return pipelines, statuses

    def _templates(self, users: list[User]) -> tuple[list[EmailTemplate], list[Sequence]]:
        templates: list[EmailTemplate] = []
        self.template_kinds: dict[str, list[int]] = {"manual": [], "bulk": [], "sequence": []}
        for name, shared, kind in _TEMPLATES:
            owner = users[0] if shared else users[min(1, len(users) - 1)]
            self.template_kinds[kind].append(len(templates))
            templates.append(EmailTemplate(self.new_id("tmpl_"), name, shared, owner.id))
        for user in users[2 : 2 + max(1, len(users) // 10)]:
            self.template_kinds["manual"].append(len(templates))
            name = f"{user.first_name}'s follow-up"
            templates.append(EmailTemplate(self.new_id("tmpl_"), name, False, user.id))
        by_name = {t.name: t for t in templates}
        seq_specs = (
            ("Outbound cadence", ("Intro email", "Follow-up 1", "Follow-up 2", "Breakup email")),
            ("Inbound nurture", ("Intro email", "Follow-up 1")),
            ("Renewal cadence", ("Renewal reminder", "Follow-up 1")),
        )
        sequences = [
            Sequence(self.new_id("seqn_"), name, tuple(by_name[t].id for t in names))
            for name, names in seq_specs
        ]
        index = {t.id: i for i, t in enumerate(templates)}
        self.sequence_templates = [[index[t] for t in s.template_ids] for s in sequences]
        return templates, sequences

    def _saved_searches(self, users: list[User], created: int) -> list[SavedSearch]:
        specs = (
            ("Referral leads", "source", "Referral", True),
            ("Website leads", "source", "Website", True),
            ("SaaS companies", "industry", "SaaS", True),
            ("Healthcare", "industry", "Healthcare", False),
            ("Partner-sourced", "source", "Partner", True),
        )
        searches = []
        for i, (name, fld, value, shared) in enumerate(specs):
            owner = users[i % len(users)]
            searches.append(
                SavedSearch(
                    self.new_id("save_"),
                    name,
                    fld,
                    value,
                    None if shared else owner.id,
                    shared,
                    created + (i + 2) * HOUR,
                )
            )
        return searches

    def _plan_structures(self) -> None:
        org = self.org
        self.pipeline_stage_lists: list[tuple[list[int], int, list[int]]] = []
        for p in range(len(org.pipelines)):
            ordered = org.pipeline_statuses(p)
            active = [s for s in ordered if org.opportunity_statuses[s].type == "active"]
            won = next(s for s in ordered if org.opportunity_statuses[s].type == "won")
            lost = [s for s in ordered if org.opportunity_statuses[s].type == "lost"]
            self.pipeline_stage_lists.append((active, won, lost))
        self.cum_pipeline: list[float] = []
        acc = 0.0
        for share in self.pipeline_shares:
            acc += share
            self.cum_pipeline.append(acc)

    def _active_user(self, preferred: int, ts: int) -> int:
        users = self.org.users
        if users[preferred].active_at(ts):
            return preferred
        for _ in range(8):
            candidate = self.rng.randrange(len(users))
            if users[candidate].active_at(ts):
                return candidate
        return 0

    # leads ------------------------------------------------------------
    def _import_leads(self, plans: list[_UserPlan]) -> None:
        """An initial CSV import by the admin on the first day: every rep gets a book."""
        base = self.start + 14 * HOUR
        count = 12 * len(plans)
        for k in range(count):
            owner = plans[k % len(plans)]
            owner.book.append(self._new_lead(base + k * 7, 0, owner.index, True))
        self.imported = count

    def _custom_values(self, ts: int) -> tuple[int, int, int, int]:
        """Custom field values of a new lead: (MRR, seats, plan, renewal day); four draws of
        ``custom_rng`` every time, so the stream does not depend on which leads are kept."""
        crng = self.custom_rng
        r_plan, r_mrr, r_seats, r_renewal = (
            crng.random(),
            crng.random(),
            crng.random(),
            (crng.random()),
        )
        plan = NO_VALUE
        if r_plan < 0.85:
            plan = bisect_right((0.2, 0.6, 0.9), r_plan / 0.85)
        mrr = NO_VALUE
        if plan != NO_VALUE or r_mrr < 0.5:
            base = (0, 120, 900, 6000)[plan] if plan != NO_VALUE else 500
            mrr = int(base * math.exp((r_mrr - 0.5) * 1.6) / 10) * 10
        seats = NO_VALUE
        if r_seats < 0.6:
            seats = 1 + int(math.exp(r_seats / 0.6 * 5.3))
        renewal = NO_VALUE
        if r_renewal < 0.5:
            renewal = (ts // DAY) + 30 + int(r_renewal / 0.5 * 365)
        return mrr, seats, plan, renewal

    def _new_lead(self, ts: int, creator: int, owner: int, keep: bool) -> int:
        """Draws a lead and its status path; appends them when ``keep`` (returns -1 if not)."""
        rng = self.rng
        r = rng.random()
        status = _POT if r < 0.8 else (_INT if r < 0.9 else _QUAL)
        source = rng.choices(range(len(LEAD_SOURCES)), (35, 20, 25, 10, 10))[0]
        industry = rng.randrange(len(INDUSTRIES))
        mrr, seats, plan, renewal = self._custom_values(ts)
        lead = -1
        if keep:
            lead = self.org.leads.append(
                ts, creator, status, source, industry, mrr, seats, plan, renewal
            )
        self._lead_path(lead, ts, owner, status)
        return lead

    def _lead_path(self, lead: int, ts: int, owner: int, status: int) -> None:
        """Draws a lead's status changes; appends those before ``gen_end`` (``lead`` >= 0)."""
        rng = self.rng
        changes = self.org.lead_status_changes
        offset_s = self.plans[owner].offset_s
        made_opp = False
        steps = 0
        while True:
            steps += 1
            if steps > 6 and status != _NURT:
                return
            r, acc, nxt = rng.random(), 0.0, -1
            for candidate, p in _LEAD_MOVES[status]:
                acc += p
                if r < acc:
                    nxt = candidate
                    break
            if nxt < 0:
                return
            at = self.work_time_after(ts, offset_s, 5.0 if status != _NURT else 12.0)
            if nxt == _NURT and at >= self.nurture_deleted_at - 3 * DAY:
                nxt = _NOTI
            if status == _NURT and at > self.nurture_deleted_at:
                # the status is about to be deleted: its leads are moved out first
                at = max(self.nurture_deleted_at - int(rng.random() * 6 * HOUR), ts + 60)
            actor = self._active_user(owner, at)
            keep = lead >= 0 and at < self.gen_end
            if keep:
                changes.append(lead, at, actor, status, nxt, at)
            if nxt in (_INT, _QUAL) and not made_opp and rng.random() < 0.6:
                made_opp = True
                self._new_opportunity(
                    lead if keep else -1, at + 600 + int(rng.random() * 4 * HOUR), owner
                )
            ts, status = at, nxt

    # opportunities ---------------------------------------------------
    def _new_opportunity(self, lead: int, ts: int, owner: int) -> None:
        """Draws an opportunity and its path to won / lost; appends what falls before
        ``gen_end`` (nothing when ``lead`` < 0)."""
        rng = self.rng
        org = self.org
        plan = self.plans[owner]
        user = self._active_user(owner, ts)
        creator = user
        if rng.random() < 0.2:
            creator = self._active_user(rng.randrange(len(org.users)), ts)
        p = bisect_right(self.cum_pipeline, rng.random())
        p = min(p, len(org.pipelines) - 1)
        active, won, losts = self.pipeline_stage_lists[p]
        r = rng.random()
        period = 0 if r < 0.4 else (1 if r < 0.72 else 2)
        base = (4_000, 450, 9_000)[period]
        dollars = max(100, int(math.exp(rng.gauss(math.log(base), 0.7)) / 50) * 50)
        stage = 0 if rng.random() < 0.85 or len(active) < 2 else 1
        opp = -1
        if lead >= 0 and ts < self.gen_end:
            opp = org.opportunities.append(
                lead, p, ts, creator, user, dollars * 100, period, active[stage]
            )
        changes = org.opportunity_status_changes
        p_lose = self.pipeline_lose[p]
        current = active[stage]
        while True:
            at = self.work_time_at(ts, plan.offset_s, stage_delay_days(rng))
            actor = self._active_user(user, at)
            keep = opp >= 0 and at < self.gen_end
            if rng.random() < p_lose:
                nxt = losts[0] if len(losts) == 1 or rng.random() < 0.7 else losts[1]
                if keep:
                    changes.append(opp, at, actor, current, nxt, at)
                return
            if stage + 1 < len(active):
                step = 2 if stage + 2 < len(active) and rng.random() < 0.07 else 1
                stage += step
                nxt = active[stage]
                if keep:
                    changes.append(opp, at, actor, current, nxt, at)
                current, ts = nxt, at
                continue
            effective = at
            if self.late_wins > 0:
                wrng = self.win_rng
                if wrng.random() < self.late_wins:
                    effective = max(ts + 60, at - late_win_backdating(wrng))
            if keep:
                changes.append(opp, at, actor, current, won, effective)
            return

    # a working day of one user ----------------------------------------
    def _pick_lead(self, plan: _UserPlan, ts: int) -> int:
        rng = self.rng
        book = plan.book
        if book and rng.random() < 0.8:
            back = int(rng.expovariate(0.08))
            lead = book[-1 - back] if back < len(book) else book[rng.randrange(len(book))]
        else:
            lead = rng.randrange(self.lead_floor)
        if self.org.leads.created_at[lead] > ts:
            lead = rng.randrange(self.imported)
        return lead

    def _user_day(self, plan: _UserPlan, day_start: int, level: float) -> None:
        """One user's activity on one UTC day. Every draw is made; an event is appended when
        it falls in ``[max(history start, joined), min(gen_end, deactivated))``."""
        rng = self.rng
        org = self.org
        u = plan.index
        user = org.users[u]
        local_start = day_start - plan.offset_s
        end = min(self.gen_end, user.deactivated_at or self.gen_end)
        start = max(self.start, user.date_created)
        poisson = self.poisson
        tod = self.time_of_day
        pick = self._pick_lead

        calls = org.calls
        for _ in range(poisson(6.0 * plan.calls * level)):
            ts = local_start + tod()
            r = rng.random()
            kind = 0 if r < 0.45 else (1 if r < 0.7 else (2 if r < 0.85 else 3))
            answered = rng.random() < 0.42
            duration = int(rng.lognormvariate(5.3, 0.8)) if answered else rng.randrange(0, 35)
            lead = pick(plan, ts)
            if start <= ts < end:
                calls.append(lead, u, ts, 1, kind, duration)
        for _ in range(poisson(1.6 * plan.calls * level)):
            ts = local_start + tod()
            duration = int(rng.lognormvariate(5.0, 0.9)) if rng.random() < 0.75 else 0
            lead = pick(plan, ts)
            if start <= ts < end:
                calls.append(lead, u, ts, 0, 0, duration)

        emails = org.emails
        opens = org.email_opens
        kinds = self.template_kinds
        gen_end = self.gen_end

        def send(ts: int, send_type: int, template: int, sequence: int, lead: int) -> None:
            reply_p, open_p = ((0.0, 0.0), (0.16, 0.55), (0.06, 0.32), (0.09, 0.5))[send_type]
            replied = -1
            if rng.random() < reply_p:
                at = ts + reply_delay(rng)
                if at < gen_end:
                    replied = at
            opened: list[int] = []
            if rng.random() < open_p:
                at = ts + first_open_delay(rng)
                while True:
                    opened.append(at)
                    if rng.random() > 0.35 or len(opened) >= 8:
                        break
                    at += reopen_delay(rng)
            if not start <= ts < end:
                return
            row = emails.append(lead, u, ts, 1, send_type, template, sequence, replied)
            if replied >= 0:
                emails.append(lead, u, replied, 0, 0, -1, -1, -1)
            for at in opened:
                if at < gen_end:
                    opens.append(row, at)

        for _ in range(poisson(4.0 * plan.emails * level)):
            ts = local_start + tod()
            tmpl = rng.choice(kinds["manual"]) if rng.random() < 0.4 else -1
            send(ts, 1, tmpl, -1, pick(plan, ts))
        for _ in range(poisson(3.2 * plan.emails * level)):
            ts = local_start + tod()
            seq = rng.randrange(len(self.sequence_templates))
            send(ts, 3, rng.choice(self.sequence_templates[seq]), seq, pick(plan, ts))
        if rng.random() < 0.3 * level:
            ts = local_start + 9 * HOUR + rng.randrange(0, 6 * HOUR)
            tmpl = rng.choice(kinds["bulk"])
            for _ in range(3 + poisson(6)):
                send(ts, 2, tmpl, -1, pick(plan, ts))
        for _ in range(poisson(1.8 * plan.emails * level)):
            ts = local_start + tod()
            lead = pick(plan, ts)
            if start <= ts < end:
                emails.append(lead, u, ts, 0, 0, -1, -1, -1)

        sms = org.sms
        for _ in range(poisson(1.6 * plan.sms * level)):
            ts = local_start + tod()
            lead = pick(plan, ts)
            if start <= ts < end:
                sms.append(lead, u, ts, 1)
        for _ in range(poisson(1.1 * plan.sms * level)):
            ts = local_start + tod()
            lead = pick(plan, ts)
            if start <= ts < end:
                sms.append(lead, u, ts, 0)

        # the day's new leads join the book after the day's activities
        for _ in range(poisson(3.0 * plan.leads * level)):
            ts = local_start + tod()
            lead = self._new_lead(ts, u, u, start <= ts < end)
            if lead >= 0:
                plan.book.append(lead)


def default_anchor() -> date:
    """Yesterday in UTC: the last complete day."""
    return (datetime.now(UTC) - timedelta(days=1)).date()


def generate_org(
    seed: int = 1,
    scale: str = "small",
    anchor_date: date | None = None,
    *,
    horizon_days: int = 0,
    late_wins: float = 0.0,
) -> Org:
    """Generates a deterministic synthetic organization.

    Args:
        seed: Random seed; the same arguments give an identical organization.
        scale: ``small`` (6 users / 60 days), ``medium`` (25 / 365) or ``large`` (200 / 730).
        anchor_date: Last day of history (UTC); defaults to yesterday.
        horizon_days: Days of activity generated after the anchor (stored, invisible until
            the simulator's now reaches them). The events up to the anchor are the same for
            every horizon.
        late_wins: Fraction of wins entered late with an earlier ``date_won`` (the activity
            report's won metrics of past days then keep changing); 0 = every win is counted
            when it is made.

    Returns:
        The organization with its full event history.
    """
    anchor = anchor_date or default_anchor()
    return _Generator(seed, scale, anchor, horizon_days, late_wins).build()


def iter_rows(table: _Table) -> Iterator[dict[str, int]]:
    """Rows of an event table as dicts of column -> int (for small orgs and tests)."""
    cols = table.columns()
    for i in range(len(table)):
        yield {name: col[i] for name, col in cols.items()}
