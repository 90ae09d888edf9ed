"""The activity-metric catalog: keys, names, descriptions and how each is computed.

Every metric is a combination of *atoms*: disjoint event streams attributed to one user with a
timestamp and an integer value (seconds for calls, cents for opportunities, 0 otherwise). A
metric is the count of its atoms' events, the sum of their values, the average (sum / count,
``None`` when there are none) or the annualized value (Σ multiplier × value).
"""

from __future__ import annotations

from dataclasses import dataclass

from .org import ANNUALIZE, CALL_TYPES, VALUE_PERIODS

# ---------------------------------------------------------------- atoms

ATOMS: tuple[str, ...] = (
    "call.inbound",
    *(f"call.outbound.{kind}" for kind in CALL_TYPES),
    *(f"email.sent.{t}.{r}" for t in ("manual", "bulk", "sequence") for r in ("reply", "noreply")),
    "email.received",
    "email.opened.other",
    "email.opened.sequence",
    "sms.sent",
    "sms.received",
    "lead.created",
    "lead.contacted",
    "opportunity.created",
    "opportunity.created_for",
    *(f"opportunity.won.{p}" for p in VALUE_PERIODS),
    *(f"opportunity.lost.{p}" for p in VALUE_PERIODS),
)
"""Atom names; their value is the call duration (seconds), the opportunity value (cents; the
annualized value for ``opportunity.created*``), else 0."""

ATOM = {name: i for i, name in enumerate(ATOMS)}


def atoms(*names: str) -> tuple[int, ...]:
    """Atom indexes of names (a trailing ``*`` matches a prefix)."""
    found: list[int] = []
    for name in names:
        if name.endswith("*"):
            found.extend(i for i, atom in enumerate(ATOMS) if atom.startswith(name[:-1]))
        else:
            found.append(ATOM[name])
    return tuple(found)


@dataclass(frozen=True)
class Metric:
    """One activity metric: ``kind`` ∈ count / sum / avg / annualized over ``atoms``."""

    key: str
    name: str
    description: str
    kind: str
    atoms: tuple[int, ...]
    weights: tuple[int, ...] = ()

    @property
    def additive(self) -> bool:
        """Whether the metric adds up across days and users (all but averages)."""
        return self.kind != "avg"


def _calls() -> list[Metric]:
    specs = [
        ("calls.all.all", "All Calls - All Types", "all calls", atoms("call.*")),
        ("calls.inbound.all", "Inbound Calls - All Types", "inbound calls", atoms("call.inbound")),
        (
            "calls.outbound.all",
            "Outbound Calls - All Types",
            "outbound calls",
            atoms("call.outbound.*"),
        ),
    ]
    labels = {
        "regular": "Regular",
        "external": "External",
        "power_dialer": "Power Dialer",
        "predictive_dialer": "Predictive Dialer",
    }
    for kind in ("regular", "external", "power_dialer", "predictive_dialer"):
        specs.append(
            (
                f"calls.outbound.{kind}",
                f"Outbound Calls - {labels[kind]}",
                f"outbound {labels[kind].lower()} calls",
                atoms(f"call.outbound.{kind}"),
            )
        )
    metrics: list[Metric] = []
    for prefix, name, what, members in specs:
        base = name.replace(" - All Types", " -")
        metrics += [
            Metric(f"{prefix}.count", name, f"The number of {what} made or received.", "count",
                   members),
            Metric(f"{prefix}.sum_duration", f"{base} Total Duration",
                   f"The total duration of {what}, in seconds.", "sum", members),
            Metric(f"{prefix}.avg_duration", f"{base} Average Duration",
                   f"The average duration of {what}, in seconds.", "avg", members),
        ]  # fmt: skip
    return metrics


def _others() -> list[Metric]:
    sent = atoms("email.sent.*")
    won = atoms("opportunity.won.*")
    lost = atoms("opportunity.lost.*")
    metrics = [
        Metric("emails.sent.all.count", "Sent Emails - All Types",
               "The number of all emails sent.", "count", sent),
        Metric("emails.sent.manual.count", "Sent Emails - Manual",
               "The number of emails sent by hand (not bulk, not sequences).", "count",
               atoms("email.sent.manual.*")),
        Metric("emails.sent.bulk.count", "Sent Emails - Bulk",
               "The number of emails sent with bulk email.", "count", atoms("email.sent.bulk.*")),
        Metric("emails.sent.sequences.count", "Sent Emails - Sequences",
               "The number of emails sent by sequences.", "count",
               atoms("email.sent.sequence.*")),
        Metric("emails.sent.sequences_with_reply.count", "Sent Emails - Sequences with Reply",
               "The number of sequence emails sent that got a reply.", "count",
               atoms("email.sent.sequence.reply")),
        Metric("emails.sent.sequences_without_reply.count",
               "Sent Emails - Sequences without Reply",
               "The number of sequence emails sent that got no reply.", "count",
               atoms("email.sent.sequence.noreply")),
        Metric("emails.sent.manual_with_reply.count", "Sent Emails - Manual with Reply",
               "The number of manually sent emails that got a reply.", "count",
               atoms("email.sent.manual.reply")),
        Metric("emails.sent.bulk_with_reply.count", "Sent Emails - Bulk with Reply",
               "The number of bulk emails that got a reply.", "count",
               atoms("email.sent.bulk.reply")),
        Metric("emails.received.all.count", "Received Emails - All Types",
               "The number of all emails received.", "count", atoms("email.received")),
        Metric("emails.opened.all.count", "Opened Emails - All Types",
               "The number of sent emails opened for the first time.", "count",
               atoms("email.opened.*")),
        Metric("emails.opened.sequences.count", "Opened Emails - Sequences",
               "The number of sequence emails opened for the first time.", "count",
               atoms("email.opened.sequence")),
        Metric("sms.sent.all.count", "Sent SMS - All Types", "The number of SMS sent.", "count",
               atoms("sms.sent")),
        Metric("sms.received.all.count", "Received SMS - All Types",
               "The number of SMS received.", "count", atoms("sms.received")),
        Metric("leads.created.all.count", "Created Leads", "The number of leads created.",
               "count", atoms("lead.created")),
        Metric("leads.contacted.all.count", "Contacted Leads",
               "The number of leads reached by call, email or SMS for the first time.", "count",
               atoms("lead.contacted")),
        Metric("opportunities.created.all.count", "Opportunities - Created",
               "The number of opportunities created by the user.", "count",
               atoms("opportunity.created")),
        Metric("opportunities.created.all.sum_annualized_value",
               "Opportunities - Created - Annualized",
               "The annualized value of opportunities created by the user, in cents.", "sum",
               atoms("opportunity.created")),
        Metric("opportunities.created_for.all.count", "Opportunities - Created For",
               "The number of opportunities created for (assigned to) the user.", "count",
               atoms("opportunity.created_for")),
        Metric("opportunities.created_for.all.sum_annualized_value",
               "Opportunities - Created For - Annualized",
               "The annualized value of opportunities created for the user, in cents.", "sum",
               atoms("opportunity.created_for")),
        Metric("opportunities.won.all.count", "Opportunities - Won",
               "The number of opportunities won.", "count", won),
        Metric("opportunities.won.all.sum_annualized_value", "Opportunities - Won - Annualized",
               "The annualized value of opportunities won, in cents.", "annualized", won,
               ANNUALIZE),
        Metric("opportunities.lost.all.count", "Opportunities - Lost",
               "The number of opportunities lost.", "count", lost),
        Metric("opportunities.lost.all.sum_annualized_value",
               "Opportunities - Lost - Annualized",
               "The annualized value of opportunities lost, in cents.", "annualized", lost,
               ANNUALIZE),
    ]  # fmt: skip
    labels = {"one_time": "One Time", "monthly": "Monthly", "annual": "Annual"}
    for outcome, verb in (("won", "Won"), ("lost", "Lost")):
        for period in VALUE_PERIODS:
            member = atoms(f"opportunity.{outcome}.{period}")
            label = labels[period]
            metrics += [
                Metric(f"opportunities.value_{outcome}.{period}.count",
                       f"Opportunities - {verb} - {label}",
                       f"The number of {label.lower()} opportunities {outcome}.", "count",
                       member),
                Metric(f"opportunities.value_{outcome}.{period}.sum_value",
                       f"Opportunities - Value {verb} - {label}",
                       f"The value of {label.lower()} opportunities {outcome}, in cents.", "sum",
                       member),
            ]  # fmt: skip
    return metrics


METRICS: tuple[Metric, ...] = tuple(_calls() + _others())
METRIC_BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}
