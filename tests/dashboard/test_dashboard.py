"""The dashboard of a real demo load, rendered in headless Chromium: self-contained (no
request but file: / data:), no console errors, the reps' names on screen, and every number
it draws equal to SQL over the marts — read back from the charts' scene graphs (what Vega
drew, after its filters and aggregates) and the scorecard table's cells."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Tuple

import duckdb
import pytest

from close_reports.close_pipeline import main
from close_reports.dashboard import write_dashboard
from tests.dashboard.browser import console_errors, png_colours, visit
from tests.dashboard.conftest import close_pipeline

pytestmark = pytest.mark.browser

MARTS = "close_marts"


def sql(path: Path, query: str, *params: Any) -> List[Tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(query.format(m=MARTS), list(params)).fetchall()


def iso(value: str) -> str:
    """'2026-09-02T00:00:00.000Z' (a Vega Date) -> '2026-09-02'."""
    return value[:10]


def month_label(start: dt.date, complete: bool = True) -> str:
    return start.strftime("%b %Y") + ("" if complete else " (to date)")


# ---------------------------------------------------------------- what the page shows


def activity_cells(seen: Any, key: str) -> Dict[Tuple[str, str], float]:
    return {
        (d["user_name"], d["week_start_date"]): d["value"]
        for d in seen.mark_data(f"chart-activity-{key}", f"{key}_cells_marks")
    }


ACTIVITY_SQL = {
    "calls": "sum(calls_count)",
    "talk_hours": "sum(calls_duration_seconds) / 3600",
    "emails": "sum(emails_sent_count)",
}


def expected_activity(
    path: Path, key: str, first: str, last: str, segment: str | None = None
) -> Dict[Tuple[str, str], float]:
    rows = sql(
        path,
        f"select user_name, week_start_date::varchar, {ACTIVITY_SQL[key]} "
        "from {m}.fct_user_activity_daily where activity_date between ? and ?"
        + (" and segment = ?" if segment else "")
        + " group by 1, 2",
        first,
        last,
        *([segment] if segment else []),
    )
    return {(name, week): float(value) for name, week, value in rows}


def assert_same_numbers(drawn: Dict[Any, float], expected: Dict[Any, float]) -> None:
    assert drawn.keys() == expected.keys()
    for key, value in expected.items():
        assert drawn[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


def scorecard_rows(seen: Any) -> Dict[Tuple[str, str], Dict[str, str]]:
    rows = seen.page.evaluate(
        """() => Array.from(document.querySelectorAll('#scorecard-table tbody tr'))
          .filter((row) => !row.hidden)
          .map((row) => [row.cells[0].textContent, row.querySelector('th').textContent,
            Object.fromEntries(Array.from(row.querySelectorAll('td[data-column]'))
              .map((cell) => [cell.dataset.column, cell.textContent]))])"""
    )
    return {(month, rep): cells for month, rep, cells in rows}


SCORECARD = {
    # column -> how its text reads back as a number
    "calls_count": "int",
    "calls_duration_minutes": "int",
    "emails_sent_count": "int",
    "emails_replied_count": "int",
    "email_reply_rate": "pct",
    "leads_contacted_count": "int",
    "opportunities_created_count": "int",
    "opportunities_won_count": "int",
    "opportunities_lost_count": "int",
    "won_value_amount": "int",
    "win_rate": "pct",
    "average_time_to_win_days": "one",
}


def assert_scorecard(shown: Dict[Tuple[str, str], Dict[str, str]], path: Path, where: str) -> None:
    columns = ", ".join(SCORECARD)
    rows = sql(
        path,
        f"select month_start_date, user_name, {columns} from {{m}}.rpt_rep_scorecard where {where}",
    )
    assert len(rows) == len(shown) > 0
    for month, user, *values in rows:
        cells = shown[(month_label(month), user)]
        for (column, kind), value in zip(SCORECARD.items(), values, strict=True):
            text = cells[column]
            if value is None:
                assert text == "–", (user, column, text)
            elif kind == "pct":
                # shown to one decimal: 31.25 may print as 31.2 (binary floats)
                assert float(text.rstrip("%")) == pytest.approx(100 * value, abs=0.051)
            elif kind == "one":
                assert float(text.replace(",", "")) == pytest.approx(float(value), abs=0.051)
            else:
                assert int(text.replace(",", "")) == round(float(value)), (user, column)


def svg_texts(seen: Any, selector: str) -> List[str]:
    texts: List[str] = seen.page.evaluate(
        "(selector) => Array.from(document.querySelectorAll(selector + ' svg text'))"
        ".map((t) => t.textContent)",
        selector,
    )
    return texts


def drawn_views(seen: Any) -> Dict[str, int]:
    """Each chart element -> how many marks its SVG holds."""
    counts: Dict[str, int] = seen.page.evaluate(
        """() => Object.fromEntries(Array.from(document.querySelectorAll('.chart')).map((c) =>
             [c.id, c.querySelectorAll('svg g[class*="role-mark"] > *').length]))"""
    )
    return counts


# ---------------------------------------------------------------- the demo load


def test_demo_dashboard_shows_the_marts(demo_duckdb: Path, tmp_path: Path, browser: Any) -> None:
    db = demo_duckdb
    out = tmp_path / "close-dashboard.html"
    result = close_pipeline(db.parent, "dashboard", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"dashboard: {out}" in result.stdout and out.as_uri() in result.stdout

    page = out.read_text(encoding="utf-8")
    assert out.stat().st_size > 20_000
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert not re.search(r"<link\b", page, re.IGNORECASE)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)

    ((first, last),) = sql(
        db,
        "select min(activity_date)::varchar, max(activity_date)::varchar "
        "from {m}.fct_user_activity_daily",
    )
    with visit(browser, out) as seen:
        assert console_errors(seen) == []
        assert seen.remote_requests() == []
        assert seen.requests == [out.as_uri()]

        views = drawn_views(seen)
        assert len(views) >= 5 and all(marks > 0 for marks in views.values()), views

        # every rep's name is drawn (as SVG text on the heat maps' axes), none hidden
        reps = {
            name
            for (name,) in sql(db, "select distinct user_name from {m}.fct_user_activity_daily")
        }
        assert len(reps) == 25
        for key in ACTIVITY_SQL:
            assert reps <= set(svg_texts(seen, f"#chart-activity-{key}"))

        # activity per rep per week = SQL
        for key in ACTIVITY_SQL:
            assert_same_numbers(activity_cells(seen, key), expected_activity(db, key, first, last))

        # leads entering / leaving each status per day, and Close's month report beside it
        daily = {
            (d["status_label"], iso(d["utcyearmonthdate_day"]), d["direction"]): d["sum_leads"]
            for d in seen.mark_data("chart-lead-status", "lead_status_daily_bars_marks")
        }
        expected: Dict[Any, float] = {}
        for status, day, entered, left in sql(
            db,
            "select status_label, status_date::varchar, count_entered, count_left "
            "from {m}.fct_lead_status_daily",
        ):
            expected[(status, day, "entered")] = entered
            expected[(status, day, "left")] = left
        assert_same_numbers(daily, expected)
        signed = seen.mark_data("chart-lead-status", "lead_status_daily_bars_marks")
        assert all(
            d["sum_signed_leads"]
            == (-d["sum_leads"] if d["direction"] == "left" else d["sum_leads"])
            for d in signed
        )
        monthly = {
            (d["status_label"], d["month_label"], d["direction"]): d["sum_leads"]
            for d in seen.mark_data("chart-lead-status", "lead_status_monthly_bars_marks")
        }
        expected = {}
        for status, start, complete, entered, left in sql(
            db,
            "select status_label, month_start_date, is_complete_month, count_entered, count_left "
            "from {m}.fct_status_monthly where object_type = 'lead'",
        ):
            expected[(status, month_label(start, complete), "entered")] = entered
            expected[(status, month_label(start, complete), "left")] = left
        assert_same_numbers(monthly, expected)

        # one status picked with the chart's own select: only its bars remain
        seen.page.select_option("#chart-lead-status select", "Qualified")
        seen.settle()
        picked = seen.mark_data("chart-lead-status", "lead_status_daily_bars_marks")
        assert {d["status_label"] for d in picked} == {"Qualified"}
        assert len(picked) == 2 * len(
            sql(db, "select distinct status_date from {m}.fct_lead_status_daily")
        )

        # funnel conversion by stage, for the pipeline / cohort picked, then another pipeline
        pipelines = [
            p for (p,) in sql(db, "select distinct pipeline_name from {m}.fct_funnel_stages")
        ]
        for choice in (None, sorted(pipelines)[0]):
            if choice:
                seen.page.select_option("#chart-funnel select >> nth=0", choice)
                seen.settle()
            pipeline = seen.signal("chart-funnel", "funnel_pipeline")
            cohort = seen.signal("chart-funnel", "funnel_cohort")
            assert pipeline == (choice or pipeline) and cohort == "created-cohort"
            cells = {
                (d["month_label"], d["status_label"]): (d["stage_count"], d["share_of_cohort"])
                for d in seen.mark_data("chart-funnel", "funnel_cells_marks")
            }
            rows = sql(
                db,
                "select month_start_date, status_label, stage_count, share_of_cohort "
                "from {m}.fct_funnel_stages where user_id = '_all' and pipeline_name = ? "
                "and cohort_type = ?",
                pipeline,
                cohort,
            )
            assert cells == {(month_label(m), s): (n, share) for m, s, n, share in rows}
            texts = svg_texts(seen, "#chart-funnel")
            for _, _, count, share in rows:
                shown = "–" if share is None else f"{round(100 * share)}%"  # empty cohort
                assert f"{shown} · {count}" in texts

        # email templates: open and reply rates over the range = sums, then divided
        bars = {
            (d["template_name"], d["measure_label"]): d["rate"]
            for d in seen.mark_data("chart-templates", "template_bars_marks")
        }
        expected = {}
        for name, sent, opened, replied in sql(
            db,
            "select coalesce(template_name, template_key), sum(sent_count), sum(opened_count), "
            "sum(responded_count) from {m}.fct_sent_email_templates group by 1",
        ):
            if sent:
                expected[(name, "opened")] = opened / sent
                expected[(name, "replied")] = replied / sent
        assert_same_numbers(bars, expected)
        assert ("All Emails", "opened") in bars

        # the scorecard table, every row, = SQL; reps' names in its row headers
        shown = scorecard_rows(seen)
        assert_scorecard(shown, db, "true")
        assert {rep for _, rep in shown} <= reps

        # pipeline health per run = the ledger mart (the demo's one run); one segment to pick
        assert_runs_drawn(seen, db)
        options = seen.page.eval_on_selector_all(
            "#segment-filter option", "(options) => options.map((o) => o.value)"
        )
        assert options == ["_all"]

        # the date range: every chart and the table follow the page's inputs
        day = dt.date.fromisoformat
        start = (day(first) + dt.timedelta(days=40)).isoformat()
        end = (day(last) - dt.timedelta(days=12)).isoformat()
        seen.page.fill("#date-from", start)
        seen.page.fill("#date-to", end)
        seen.settle()
        for key in ACTIVITY_SQL:
            assert_same_numbers(activity_cells(seen, key), expected_activity(db, key, start, end))
        months = {
            d["month_label"]
            for d in seen.mark_data("chart-lead-status", "lead_status_monthly_bars_marks")
        }
        assert months == {
            month_label(m, c)
            for m, c in sql(
                db,
                "select distinct month_start_date, is_complete_month from {m}.fct_status_monthly "
                "where window_end_date > ? and month_start_date <= ?",
                start,
                end,
            )
        }
        bars = {
            (d["template_name"], d["measure_label"]): d["rate"]
            for d in seen.mark_data("chart-templates", "template_bars_marks")
        }
        expected = {}
        for name, sent, opened in sql(
            db,
            "select coalesce(template_name, template_key), sum(sent_count), sum(opened_count) "
            "from {m}.fct_sent_email_templates where window_start_date between ? and ? "
            "group by 1",
            start,
            end,
        ):
            expected[(name, "opened")] = opened / sent
        assert_same_numbers({k: v for k, v in bars.items() if k[1] == "opened"}, expected)
        shown = scorecard_rows(seen)
        assert_scorecard(
            shown,
            db,
            f"month_start_date + interval 1 month > '{start}' and month_start_date <= '{end}'",
        )
        seen.page.click("#date-reset")
        seen.settle()
        assert_same_numbers(
            activity_cells(seen, "calls"), expected_activity(db, "calls", first, last)
        )
        assert console_errors(seen) == []

        png = seen.page.screenshot(path=str(tmp_path / "dashboard.png"))
        picture = png_colours(browser, png)
        assert picture["width"] == 1400 and picture["colours"] > 100, picture
    assert seen.remote_requests() == []


# ---------------------------------------------------------------- the marts still to come


def assert_runs_drawn(seen: Any, path: Path) -> None:
    """The pipeline health bars, per run, equal rpt_pipeline_runs."""
    runs = sql(
        path,
        "select run_id, request_count, rate_limited_count, reports_failed "
        "from {m}.rpt_pipeline_runs",
    )
    assert runs
    for column, index in (("requests", 1), ("rate_limited", 2), ("failed", 3)):
        marks = seen.mark_data("chart-runs", f"runs_{column}_bars_marks")
        drawn = {d["run_id"]: d[column] for d in marks}
        assert drawn == {run[0]: run[index] for run in runs}


def add_fixture_marts(path: Path) -> List[str]:
    """A second segment of the demo's marts (five reps), an empty mart and a missing one;
    returns the reps of the fixture segment."""
    with duckdb.connect(str(path)) as con:
        team = [
            name
            for (name,) in con.execute(
                "select distinct user_name from close_marts.fct_user_activity_daily "
                "order by 1 limit 5"
            ).fetchall()
        ]
        for table in ("fct_user_activity_daily", "rpt_rep_scorecard"):
            con.execute(
                f"""
                insert into close_marts.{table}
                select * replace ('team-a' as segment) from close_marts.{table}
                where segment = '_all' and user_name in (select unnest(?::varchar[]))
                """,
                [team],
            )
        con.execute("delete from close_marts.fct_sent_email_templates")
        con.execute("drop table close_marts.fct_funnel_stages")
    return team


def test_run_ledger_segments_and_missing_marts(
    demo_copy: Path, tmp_path: Path, browser: Any
) -> None:
    team = add_fixture_marts(demo_copy)
    out = tmp_path / "dashboard.html"
    dashboard = write_dashboard(demo_copy, out)
    assert dashboard.segments == ["_all", "team-a"]
    notes = {s.key: s.note for s in dashboard.sections}
    assert "has no rows yet" in notes["templates"]
    assert "close_marts.fct_funnel_stages is not in" in notes["funnel"]
    assert notes["runs"] == ""

    ((first, last),) = sql(
        demo_copy,
        "select min(activity_date)::varchar, max(activity_date)::varchar "
        "from {m}.fct_user_activity_daily",
    )
    with visit(browser, out) as seen:
        assert console_errors(seen) == []
        assert seen.remote_requests() == []
        views = drawn_views(seen)
        assert set(views) == {
            "chart-activity-calls",
            "chart-activity-talk_hours",
            "chart-activity-emails",
            "chart-lead-status",
            "chart-runs",
        }
        assert all(marks > 0 for marks in views.values()), views
        assert "has no rows yet" in (seen.page.text_content('[data-note="templates"]') or "")
        assert "is not in" in (seen.page.text_content('[data-note="funnel"]') or "")

        assert_runs_drawn(seen, demo_copy)

        # segments: '_all' by default, then the fixture segment
        options = seen.page.eval_on_selector_all(
            "#segment-filter option", "(options) => options.map((o) => o.value)"
        )
        assert options == ["_all", "team-a"]
        for segment in ("_all", "team-a"):
            if segment != "_all":
                seen.page.select_option("#segment-filter", segment)
                seen.settle()
            for key in ACTIVITY_SQL:
                assert_same_numbers(
                    activity_cells(seen, key),
                    expected_activity(demo_copy, key, first, last, segment),
                )
            assert_scorecard(scorecard_rows(seen), demo_copy, f"segment = '{segment}'")
        assert {name for name, _ in activity_cells(seen, "calls")} == set(team)
        assert console_errors(seen) == []


def test_failed_runs_are_counted_and_an_old_ledger_mart_gets_a_note(tmp_path: Path) -> None:
    """A partial run's failed reports are drawn (and named); the other marts missing or
    unreadable give a note each; a ledger mart from an older build says how to rebuild it."""
    path = tmp_path / "ledger.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema close_marts")
        con.execute(
            """
            create table close_marts.rpt_pipeline_runs as
            select * from (values
                ('r1', timestamptz '2026-11-30 06:00:01+00', 22, 3, 4, 2,
                 'funnel_stages, funnel_totals', 'partial'),
                ('r2', timestamptz '2026-12-01 06:00:00+00', 5, 0, 0, 0, null, 'ok')
            ) as t(run_id, started_at, request_count, retry_count, rate_limited_count,
                   reports_failed, failed_reports, run_status)
            """
        )
        # an older build of a mart, without a column the dashboard reads
        con.execute(
            "create table close_marts.fct_sent_email_templates as "
            "select date '2026-11-30' as window_start_date, 'All Emails' as template_name"
        )
    out = tmp_path / "dashboard.html"
    dashboard = write_dashboard(path, out)
    data = json.loads(
        re.search(
            r'<script type="application/json" id="close-dashboard-data">(.*?)</script>',
            out.read_text(),
            re.DOTALL,
        ).group(1)  # type: ignore[union-attr]
    )
    runs = {r["run_id"]: r for r in data["pipeline_runs"]}
    assert runs["r1"]["requests"] == 22 and runs["r1"]["rate_limited"] == 4
    assert runs["r1"]["retries"] == 3 and runs["r1"]["started_at"] == "2026-11-30 06:00:01"
    assert runs["r1"]["failed"] == 2
    assert runs["r1"]["failed_reports"] == "funnel_stages, funnel_totals"
    assert runs["r2"]["requests"] == 5 and runs["r2"]["failed"] == 0
    # every other mart is missing or unreadable: a note each, nothing crashed
    assert dashboard.chart_count == 1
    notes = {s.key: s.note for s in dashboard.sections}
    assert all(note for key, note in notes.items() if key != "runs")
    assert notes["templates"].startswith("Could not read the marts for this section (")
    assert "close_marts.fct_user_activity_daily is not in ledger.duckdb" in notes["activity"]

    with duckdb.connect(str(path)) as con:
        con.execute("alter table close_marts.rpt_pipeline_runs drop column retry_count")
    dashboard = write_dashboard(path, out)
    note = {s.key: s.note for s in dashboard.sections}["runs"]
    assert "lacks retry_count" in note and "rebuilds it" in note


def test_empty_duckdb_file_gives_notes_not_a_crash(tmp_path: Path, browser: Any, capsys) -> None:
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    out = tmp_path / "dashboard.html"
    assert main(["dashboard", "--duckdb-path", str(path), "--out", str(out)]) == 0
    assert "no data for: Activity per rep per week" in capsys.readouterr().out
    with visit(browser, out) as seen:
        assert console_errors(seen) == []
        notes = seen.page.eval_on_selector_all("[data-note]", "(notes) => notes.length")
        assert notes == 6
        assert "No run ledger yet" in (seen.page.text_content('[data-note="runs"]') or "")


def test_missing_duckdb_file_exits_2(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nowhere.duckdb"
    assert (
        main(["dashboard", "--duckdb-path", str(missing), "--out", str(tmp_path / "x.html")]) == 2
    )
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("close-pipeline dashboard failed: No DuckDB file at ")
    assert "close-pipeline run --demo" in error
    assert not (tmp_path / "x.html").exists()
