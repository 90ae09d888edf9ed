"""Late data and a clock that advances: every report answers as of the simulator's now.

An organization generated with ``horizon_days`` stores events after its anchor; they become
visible as ``now`` advances, while past days' numbers keep changing (replies and opens
arriving late, opportunities won weeks later, wins entered late with an earlier
``date_won``). The truth is brute force over the exported event log, filtered at now in SQL.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import duckdb
import httpx
import pytest

from close_reports.simulator import (
    CloseSimulator,
    Org,
    event_tables,
    events_to_duckdb,
    generate_org,
)
from close_reports.simulator.metrics import METRICS
from close_reports.simulator.org import DAY, first_open_delay, reply_delay

from .conftest import ANCHOR, SEED
from .expected import S, expected_metric, sql_ts, status_paths, status_truth, utc

HORIZON = 35
KEYS = [m.key for m in METRICS]
HISTORY_END = int(datetime(2026, 3, 21, tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def late_org() -> Org:
    """60 days of history to ANCHOR, 35 days of future, 30 % of wins entered late."""
    return generate_org(SEED, "small", ANCHOR, horizon_days=HORIZON, late_wins=0.3)


@pytest.fixture(scope="module")
def late_duck(late_org: Org) -> Iterator[duckdb.DuckDBPyConnection]:
    """The full stored log of ``late_org`` (future included; tests filter at now)."""
    con = duckdb.connect()
    events_to_duckdb(late_org, con)
    yield con
    con.close()


def epoch_of(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def activity(client: httpx.Client, kind: str, start: int, end: int, **extra: object) -> dict:
    body = {
        "type": kind,
        "metrics": KEYS,
        "datetime_range": {
            "start": utc(start).isoformat() + "Z",
            "end": utc(end).isoformat() + "Z",
        },
        **extra,
    }
    response = client.post("/report/activity/", json=body)
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------- the horizon changes nothing


def requests_of(org: Org) -> list[tuple[str, str, dict | None, dict]]:
    """A spread of report requests with explicit windows (method, path, json, params)."""
    return [
        ("POST", "/report/activity/", {"type": "comparison", "metrics": KEYS,
         "datetime_range": {"start": "2026-03-18", "end": "2026-03-19"}}, {}),
        ("POST", "/report/activity/", {"type": "overview", "metrics": KEYS,
         "datetime_range": {"start": "2026-03-01", "end": "2026-03-28"}}, {}),
        ("GET", f"/report/sent_emails/{org.id}/", None,
         {"date_start": "2026-03-10", "date_end": "2026-03-25"}),
        ("GET", f"/report/statuses/lead/{org.id}/", None,
         {"date_start": "2026-03-01", "date_end": "2026-04-01"}),
        ("GET", f"/report/statuses/opportunity/{org.id}/", None,
         {"date_start": "2026-02-15", "date_end": "2026-03-21", "user_id": org.users[1].id}),
        ("POST", "/report/funnel/opportunity/totals/", {"pipeline": org.pipelines[0].id,
         "type": "created-cohort",
         "cohort_datetime_range": {"start": "2026-02-01", "end": "2026-03-01"}}, {}),
        ("POST", "/report/funnel/opportunity/stages/", {"pipeline": org.pipelines[0].id,
         "type": "active-stage-cohort",
         "report_datetime_range": {"start": "2026-03-01", "end": "2026-04-01"}}, {}),
        ("GET", f"/report/custom/{org.id}/", None,
         {"x": "lead.date_created", "group_by": "lead.status", "start": "2026-02-01",
          "end": "2026-04-01", "interval": "week"}),
        ("GET", f"/report/custom/{org.id}/", None, {"x": "lead.custom.MRR", "interval": "500"}),
    ]  # fmt: skip


@pytest.mark.parametrize("offset", ["0", "-5"])
def test_an_org_with_a_horizon_answers_like_the_org_without_one(org: Org, offset: str) -> None:
    """Every draw is made whether or not its event is kept, so the history up to the anchor
    does not depend on the horizon: at the default now the answers are byte-identical."""
    future = generate_org(SEED, "small", ANCHOR, horizon_days=HORIZON)
    assert future.generated_until == org.history_end + HORIZON * DAY
    assert future.event_count() > org.event_count()
    simulators = [CloseSimulator(org), CloseSimulator(future)]
    if offset == "0":  # an explicit now at the default instant is the default
        simulators.append(CloseSimulator(future, now=ANCHOR + timedelta(days=1)))
    clients = [s.client() for s in simulators]
    try:
        for method, path, body, params in requests_of(org):
            answers = [
                c.request(method, path, json=body, params=params, headers={"X-TZ-Offset": offset})
                for c in clients
            ]
            assert answers[0].status_code == 200, answers[0].text
            for other in answers[1:]:
                assert other.content == answers[0].content, path
    finally:
        for c in clients:
            c.close()


# ---------------------------------------------------------------- as of now = brute force

NOWS = [
    HISTORY_END,  # the default now
    HISTORY_END + 9 * DAY + 13 * 3600 + 37 * 60,  # mid-day, inside the horizon
    HISTORY_END + 30 * DAY,
]


@pytest.mark.parametrize("now", NOWS)
def test_activity_as_of_now_equals_the_log_filtered_at_now(
    late_org: Org, late_duck: duckdb.DuckDBPyConnection, now: int
) -> None:
    start, end = HISTORY_END - 20 * DAY, HISTORY_END + 40 * DAY  # past, now, future
    with CloseSimulator(late_org, now=now).client() as client:
        overview = activity(client, "overview", start, end)
        for key in KEYS:
            want = expected_metric(late_duck, key, start, end, now=now)
            assert overview["aggregations"]["totals"][key] == want, key
        for bucket in overview["data"]:  # buckets after now are zero
            lo = int(datetime.fromisoformat(bucket["datetime"]).timestamp())
            if lo > now:
                assert bucket["calls.all.all.count"] == 0
                assert bucket["emails.sent.all.count"] == 0
        now_day = epoch_of(utc(now).date())
        for day_start in (HISTORY_END - 2 * DAY, now_day - DAY, now_day):
            rows = activity(client, "comparison", day_start, day_start + DAY)["data"]
            for row in rows:
                for key in (
                    "emails.sent.sequences_with_reply.count",
                    "emails.sent.sequences_without_reply.count",
                    "emails.sent.manual_with_reply.count",
                    "emails.opened.all.count",
                    "opportunities.won.all.count",
                    "opportunities.won.all.sum_annualized_value",
                    "calls.all.all.count",
                    "leads.contacted.all.count",
                ):
                    want = expected_metric(
                        late_duck, key, day_start, day_start + DAY, user_id=row["user_id"], now=now
                    )
                    assert row[key] == want, (key, row["user_id"], utc(day_start))


def sent_truth(
    con: duckdb.DuckDBPyConnection, start: int, end: int, now: int
) -> dict[str | None, tuple[int, int, int]]:
    n = sql_ts(now)
    rows = con.execute(
        f"""
        select grouping(e.template_id) as is_total, e.template_id, count(*),
               count(*) filter (where exists (
                   select 1 from {S}.email_opens o where o.email_id = e.id and o.opened_at <= {n})),
               count(*) filter (where e.replied_at <= {n})
        from {S}.emails e
        where e.direction = 'sent' and e.created_at >= ? and e.created_at < ?
          and e.created_at <= {n}
        group by grouping sets ((e.template_id), ())
        """,
        [utc(start), utc(end)],
    ).fetchall()
    result: dict[str | None, tuple[int, int, int]] = {"_all": (0, 0, 0)}
    for is_total, template, total, opened, responded in rows:
        if is_total:
            result["_all"] = (total, opened, responded)
        elif template is not None:
            result[template] = (total, opened, responded)
    return result


def sent_rows(client: httpx.Client, org: Org, start: int, end: int) -> dict[str, tuple]:
    response = client.get(
        f"/report/sent_emails/{org.id}/",
        params={"date_start": utc(start).isoformat() + "Z", "date_end": utc(end).isoformat() + "Z"},
    )
    assert response.status_code == 200, response.text
    return {
        r["template_id"] or "_all": (r["total"], r["opened"], r["responded"])
        for r in response.json()["sent_email_stats"]
    }


@pytest.mark.parametrize("now", NOWS)
def test_sent_emails_status_and_funnels_as_of_now(
    late_org: Org, late_duck: duckdb.DuckDBPyConnection, now: int
) -> None:
    org = late_org
    with CloseSimulator(org, now=now).client() as client:
        # sent emails: opened / responded as of now, for emails sent in the window
        start, end = HISTORY_END - 7 * DAY, HISTORY_END + 20 * DAY
        truth = sent_truth(late_duck, start, end, now)
        got = sent_rows(client, org, start, end)
        assert got == truth

        # status reports: states and events before now
        lo, hi = HISTORY_END - 5 * DAY, HISTORY_END + 25 * DAY
        for kind in ("lead", "opportunity"):
            report = client.get(
                f"/report/statuses/{kind}/{org.id}/",
                params={
                    "date_start": utc(lo).isoformat() + "Z",
                    "date_end": utc(hi).isoformat() + "Z",
                },
            ).json()
            truth_s = status_truth(status_paths(late_duck, kind, now=now), lo, hi)
            for row in report["status_overview"]:
                want = truth_s.counters.get(row["status_id"], {})
                for counter in ("started", "ended", "gained", "lost", "entered", "left"):
                    assert row[counter] == want.get(counter, 0), (
                        kind,
                        row["status_label"],
                        counter,
                    )
            got_t = {
                (t["from_status_id"], t["to_status_id"]): t["count"]
                for t in report["status_transitions"]
            }
            assert got_t == truth_s.transitions

        # funnels: a created cohort as of now; an active-stage cohort at min(report end, now)
        types = dict(late_duck.execute(f"select id, type from {S}.opportunity_statuses").fetchall())
        pipeline = org.pipelines[0]
        opps = funnel_paths(late_duck, pipeline.id, now)
        for cohort_start, cohort_end in (
            (date(2026, 2, 1), date(2026, 3, 1)),
            (date(2026, 3, 1), date(2026, 4, 1)),
        ):
            body = {
                "pipeline": pipeline.id,
                "type": "created-cohort",
                "cohort_datetime_range": {"start": str(cohort_start), "end": str(cohort_end)},
                "report_datetime_range": {"start": str(cohort_start), "end": str(cohort_end)},
            }
            agg = client.post("/report/funnel/opportunity/totals/", json=body).json()[
                "aggregations"
            ]
            lo_c, hi_c = utc(epoch_of(cohort_start)), utc(epoch_of(cohort_end))
            members = [o for o in opps.values() if lo_c <= o["created"] < hi_c]
            finals = [types[o["path"][-1][1]] for o in members]
            assert agg["count"] == len(members)
            assert agg["count_total_won"] == finals.count("won")
            assert agg["count_total_complete"] == finals.count("won") + finals.count("lost")
        r_lo, r_hi = HISTORY_END - 10 * DAY, HISTORY_END + 15 * DAY
        t_eval = min(r_hi, now + 1)
        body = {
            "pipeline": pipeline.id,
            "type": "active-stage-cohort",
            "report_datetime_range": {
                "start": utc(r_lo).isoformat() + "Z",
                "end": utc(r_hi).isoformat() + "Z",
            },
        }
        agg = client.post("/report/funnel/opportunity/totals/", json=body).json()["aggregations"]
        lo_r, t_r = utc(min(r_lo, t_eval)), utc(t_eval)
        count = won = 0
        for o in opps.values():
            before = [s for at, s in o["path"] if at < lo_r]
            during = [s for at, s in o["path"] if lo_r <= at < t_r]
            if (before and types[before[-1]] == "active") or any(
                types[s] == "active" for s in during
            ):
                count += 1
                won += types[[s for at, s in o["path"] if at < t_r][-1]] == "won"
        assert (agg["count"], agg["count_total_won"]) == (count, won)

        # Explorer: leads created before now, grouped by their status as of now
        explorer = client.get(
            f"/report/custom/{org.id}/",
            params={"x": "lead.date_created", "group_by": "lead.status", "interval": "month",
                    "start": "2026-01-01", "end": "2026-06-01"},
        ).json()  # fmt: skip
        lead_paths = status_paths(late_duck, "lead", now=now)
        by_status: dict[str, int] = defaultdict(int)
        for events in lead_paths.values():
            by_status[events[-1][2]] += 1
        assert {s["key"]: s["count"] for s in explorer["series"]} == dict(by_status)


def funnel_paths(con: duckdb.DuckDBPyConnection, pipeline_id: str, now: int) -> dict[str, dict]:
    n = sql_ts(now)
    opps: dict[str, dict] = {}
    for oid, created, status in con.execute(
        f"select id, created_at, original_status_id from {S}.opportunities "
        f"where pipeline_id = ? and created_at <= {n}",
        [pipeline_id],
    ).fetchall():
        opps[oid] = {"created": created, "path": [(created, status)]}
    for oid, at, new in con.execute(
        f"select opportunity_id, changed_at, new_status_id from {S}.opportunity_status_changes "
        f"where changed_at <= {n} order by changed_at"
    ).fetchall():
        if oid in opps:
            opps[oid]["path"].append((at, new))
    return opps


# ---------------------------------------------------------------- a month of daily runs


def test_a_month_of_days_past_numbers_keep_changing(
    late_org: Org, late_duck: duckdb.DuckDBPyConnection
) -> None:
    """Now moves one day at a time for a month: new days of activity appear, and the past's
    as-of-now numbers (replies, opens, created-cohort wins, late-entered wins) keep changing,
    each equal to the log filtered at that now."""
    org = late_org
    simulator = CloseSimulator(org, now=ANCHOR + timedelta(days=1))
    day = HISTORY_END - 2 * DAY  # a past day, already 2 days old on the first run
    history = HISTORY_END - 60 * DAY
    reply_keys = [
        "emails.sent.manual_with_reply.count",
        "emails.sent.bulk_with_reply.count",
        "emails.sent.sequences_with_reply.count",
    ]
    pipeline = org.pipelines[0].id
    cohort = {
        "pipeline": pipeline,
        "type": "created-cohort",
        "cohort_datetime_range": {"start": "2026-03-01", "end": "2026-03-21"},
        "report_datetime_range": {"start": "2026-03-01", "end": "2026-03-21"},
    }
    seen: dict[str, list[int]] = defaultdict(list)
    with simulator.client() as client:
        for step in range(31):
            now = simulator.now
            assert now == HISTORY_END + step * DAY
            sent = sent_rows(client, org, day, day + DAY)["_all"]
            assert sent == sent_truth(late_duck, day, day + DAY, now)["_all"]
            seen["responded"].append(sent[2])
            seen["opened"].append(sent[1])
            totals = activity(client, "overview", day, day + DAY)["aggregations"]["totals"]
            with_reply = sum(totals[k] for k in reply_keys)
            assert with_reply == sum(
                expected_metric(late_duck, k, day, day + DAY, now=now) for k in reply_keys
            )
            seen["with_reply"].append(with_reply)
            won = activity(client, "overview", history, HISTORY_END)["aggregations"]["totals"]
            assert won["opportunities.won.all.count"] == expected_metric(
                late_duck, "opportunities.won.all.count", history, HISTORY_END, now=now
            )
            seen["won_in_history"].append(won["opportunities.won.all.count"])
            funnel = client.post("/report/funnel/opportunity/totals/", json=cohort).json()
            seen["cohort_won"].append(funnel["aggregations"]["count_total_won"])
            yesterday = activity(client, "overview", now - DAY, now)["aggregations"]["totals"]
            seen["calls_yesterday"].append(yesterday["calls.all.all.count"])
            today = activity(client, "overview", now, now + DAY)["aggregations"]["totals"]
            assert today["calls.all.all.count"] == 0  # now = 00:00: nothing of today yet
            simulator.advance(days=1)
    for name in ("responded", "opened", "with_reply", "won_in_history", "cohort_won"):
        values = seen[name]
        assert values == sorted(values), name  # late data only adds
    # past the loader's old 3-day lookback, the past still moves
    assert seen["responded"][-1] > seen["responded"][2]
    assert seen["with_reply"][-1] > seen["with_reply"][2]
    assert seen["won_in_history"][-1] > seen["won_in_history"][2]
    assert seen["cohort_won"][-1] > seen["cohort_won"][7]
    assert sum(1 for n in seen["calls_yesterday"] if n > 0) >= 20  # new days keep coming


# ---------------------------------------------------------------- determinism and the clock


def test_same_seed_anchor_and_now_give_identical_responses(late_org: Org) -> None:
    again = generate_org(SEED, "small", ANCHOR, horizon_days=HORIZON, late_wins=0.3)
    now = HISTORY_END + 12 * DAY + 5 * 3600
    fixed = CloseSimulator(late_org, now=now)
    other = CloseSimulator(again, now=datetime.fromtimestamp(now, tz=UTC))
    called = CloseSimulator(again, now=lambda: now)
    with fixed.client() as a, other.client() as b, called.client() as c:
        for method, path, body, params in requests_of(late_org):
            ra = a.request(method, path, json=body, params=params, headers={"X-TZ-Offset": "-5"})
            rb = b.request(method, path, json=body, params=params, headers={"X-TZ-Offset": "-5"})
            rc = c.request(method, path, json=body, params=params, headers={"X-TZ-Offset": "-5"})
            assert ra.status_code == 200 and ra.content == rb.content == rc.content, path


def test_clock_api(org: Org) -> None:
    simulator = CloseSimulator(org)
    assert simulator.now is None and simulator.until(org) == org.history_end
    assert simulator.advance(days=1) == org.history_end + DAY
    assert simulator.advance(hours=6) == org.history_end + DAY + 6 * 3600
    assert simulator.advance_to(date(2026, 3, 1)) == epoch_of(date(2026, 3, 1))
    assert simulator.advance_to(datetime(2026, 3, 1, 12)) == epoch_of(date(2026, 3, 1)) + 43_200
    assert simulator.advance_to("2026-03-01T12:00:00-05:00") == epoch_of(date(2026, 3, 1)) + 61_200
    assert simulator.until(org) == simulator.now + 1
    with pytest.raises(ValueError):
        simulator.advance_to("yesterday")
    assert simulator.advance_to(None) is None
    with simulator.client() as client:  # the control endpoint (no auth, not counted)
        assert client.get("/__simulator__/now").json()["now"] is None
        answer = client.post("/__simulator__/now", json={"now": "2026-03-10"}).json()
        assert answer["now_epoch"] == epoch_of(date(2026, 3, 10))
        assert simulator.now == epoch_of(date(2026, 3, 10))
        assert client.post("/__simulator__/now", json={"now": "soon"}).status_code == 400
        client.post("/__simulator__/now", json={"now": None})
    assert simulator.now is None and simulator.stats()["requests"] == 0


def test_rewinding_now_hides_the_later_past(org: Org, duck: duckdb.DuckDBPyConnection) -> None:
    """Now may also lie inside the history: the org then looks as it did at that moment."""
    now = HISTORY_END - 10 * DAY + 15 * 3600
    with CloseSimulator(org, now=now).client() as client:
        start = HISTORY_END - 20 * DAY
        totals = activity(client, "overview", start, HISTORY_END)["aggregations"]["totals"]
        for key in KEYS:
            assert totals[key] == expected_metric(duck, key, start, HISTORY_END, now=now), key
        relative = client.post(
            "/report/activity/",
            json={
                "type": "overview",
                "metrics": ["calls.all.all.count"],
                "relative_range": "today",
            },
        ).json()
        assert relative["data"][0]["datetime"] == "2026-03-11T00:00:00+00:00"


def test_late_mutations_count_once_now_reaches_them() -> None:
    org = generate_org(SEED, "small", ANCHOR, horizon_days=10)
    user = org.users[1]
    sent_at = datetime(2026, 3, 19, 15, tzinfo=UTC)
    org.add_email(user.id, sent_at, replied_at=datetime(2026, 3, 25, 9, tzinfo=UTC))
    with pytest.raises(ValueError):
        org.add_call(user.id, datetime(2026, 4, 1, tzinfo=UTC))  # after generated_until
    simulator = CloseSimulator(org)
    day = epoch_of(date(2026, 3, 19))
    with simulator.client() as client:

        def replied() -> int:
            return activity(client, "comparison", day, day + DAY, users=[user.id])["data"][0][
                "emails.sent.manual_with_reply.count"
            ]

        before = replied()
        simulator.advance_to(datetime(2026, 3, 25, 9, tzinfo=UTC))  # at the reply: counted
        assert replied() == before + 1
        simulator.advance_to(datetime(2026, 3, 25, 8, 59, tzinfo=UTC))
        assert replied() == before
    opp = org.opportunity_id(0)
    won = next(
        s for s in org.opportunity_statuses
        if s.type == "won" and s.pipeline_id == org.pipelines[org.opportunities.pipeline[0]].id
    )  # fmt: skip
    with pytest.raises(ValueError):
        org.add_opportunity_status_change(
            opp, datetime(2026, 3, 26, tzinfo=UTC), won.id, date_won=datetime(2026, 3, 27)
        )


# ---------------------------------------------------------------- the stated distributions


def test_reply_and_open_delays_have_the_documented_long_tail(late_org: Org) -> None:
    rng = random.Random(11)
    replies = [reply_delay(rng) for _ in range(100_000)]
    opens = [first_open_delay(rng) for _ in range(100_000)]

    def share(values: list[int], days: float) -> float:
        return sum(v > days * DAY for v in values) / len(values)

    assert 0.72 <= 1 - share(replies, 1) <= 0.78  # most within a day
    assert 0.13 <= share(replies, 3) <= 0.16  # past a 3-day lookback
    assert 0.015 <= share(replies, 28) <= 0.026  # past a 28-day refresh window
    assert share(replies, 121) == 0
    assert 0.07 <= share(opens, 3) <= 0.09
    emails = late_org.emails
    late_replies = [
        emails.replied_at[k] - emails.at[k]
        for k in range(len(emails))
        if emails.direction[k] and emails.replied_at[k] >= 0
    ]
    assert sum(d > 14 * DAY for d in late_replies) >= 5


def test_opportunities_close_weeks_to_months_after_creation() -> None:
    org = generate_org(1, "medium", date(2025, 12, 31))
    changes = org.opportunity_status_changes
    types = [s.type for s in org.opportunity_statuses]
    cycles = sorted(
        (changes.at[i] - org.opportunities.created_at[changes.obj[i]]) / DAY
        for i in range(len(changes))
        if types[changes.new[i]] == "won"
    )
    median, p90 = cycles[len(cycles) // 2], cycles[int(len(cycles) * 0.9)]
    assert 10 <= median <= 25 and p90 >= 45


# ---------------------------------------------------------------- the exported log


def test_export_as_of_equals_the_full_log_filtered(
    late_org: Org, late_duck: duckdb.DuckDBPyConnection
) -> None:
    now = HISTORY_END + 5 * DAY
    view = event_tables(late_org, as_of=now)
    n = sql_ts(now)
    for table, column in (
        ("calls", "created_at"),
        ("emails", "created_at"),
        ("email_opens", "opened_at"),
        ("leads", "created_at"),
        ("opportunity_status_changes", "changed_at"),
    ):
        want = late_duck.execute(
            f"select count(*) from {S}.{table} where {column} <= {n}"
        ).fetchall()
        assert view[table].num_rows == want[0][0], table
    replies = late_duck.execute(
        f"select count(*) from {S}.emails where created_at <= {n} and replied_at <= {n}"
    ).fetchall()[0][0]
    assert sum(view["emails"]["has_reply"].to_pylist()) == replies
    organization = view["organization"].to_pylist()[0]
    assert organization["horizon_days"] == HORIZON and organization["late_wins"] == 0.3
    assert organization["as_of"] == utc(now)
    late = late_duck.execute(
        f"select count(*) from {S}.opportunity_status_changes where date_won < changed_at"
    ).fetchall()[0][0]
    assert late > 0
    future = late_duck.execute(f"select count(*) from {S}.calls where created_at > {n}").fetchall()
    assert future[0][0] > 0  # the full log holds the future
