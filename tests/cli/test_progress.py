"""Progress output: a bar per report on a terminal, throttled plain lines elsewhere."""

import io
from datetime import date

from close_reports.progress import Progress
from close_reports.source.windows import Window

DAY = Window(date(2026, 3, 1), date(2026, 3, 2))


def test_plain_lines_when_not_a_terminal(monkeypatch) -> None:
    stream = io.StringIO()
    clock = iter([100.0, 101.0, 106.0])
    monkeypatch.setattr("close_reports.progress.time.monotonic", lambda: next(clock))
    progress = Progress(stream, interactive=False)
    for _ in range(3):
        progress("activity_by_user", "orga_1", DAY)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines == [
        "progress: activity_by_user 1 windows read, last [2026-03-01, 2026-03-02) (org orga_1)",
        "progress: activity_by_user 3 windows read, last [2026-03-01, 2026-03-02) (org orga_1)",
        "progress: activity_by_user done, 3 windows",
    ]


def test_a_bar_per_report_on_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(stream, interactive=True)
    for table in ("activity_by_user", "funnel_totals", "activity_by_user"):
        progress(table, "orga_1", DAY)
    progress.close()
    output = stream.getvalue()
    assert "activity_by_user" in output and "funnel_totals" in output
    assert "2 windows" in output and "2026-03-01" in output


def test_dbt_build_prints_a_line_when_it_starts_and_ends() -> None:
    from close_reports.progress import dbt_progress

    stream = io.StringIO()
    with dbt_progress("duckdb", stream=stream, every=3600):
        pass
    lines = stream.getvalue().splitlines()
    assert lines[0] == "dbt: building the marts on duckdb (seeds, staging views, marts, tests)..."
    assert lines[-1].startswith("dbt: done in ")
