"""The performance machinery of the source: Arrow batches (with their dict fallback), the
concurrency gate, chunked worker calls, unique keys per batch, JSON parsing."""

import threading
import time
from datetime import date
from typing import Any, Dict, List

import pyarrow as pa
import pytest

from close_reports.source import arrow, reshape
from close_reports.source.client import parse_json
from close_reports.source.settings import MERGE_DEDUPLICATED, TABLES, write_disposition
from close_reports.source.windows import Window
from close_reports.source.workers import ConcurrencyGate, chunk_size, interleave, run_calls
from tests.utils import FakeClock

DAY = Window(date(2026, 3, 1), date(2026, 3, 2))
METRICS = ["calls.all.all.count", "calls.all.all.avg_duration", "emails.sent.all.count"]


def sent_row(**overrides: Any) -> Dict[str, Any]:
    row = {
        "org_id": "orga_1",
        "segment": "_all",
        "window_start": DAY.start,
        "window_end": DAY.end,
        "timezone": "UTC",
        "template_key": "_all",
        "template_id": None,
        "name": "All Emails",
        "is_shared": True,
        "total": 3,
        "opened": 1,
        "responded": 0,
        "percentage_opened": 33,
        "percentage_responded": 0,
    }
    row.update(overrides)
    return row


# ---------------------------------------------------------------- Arrow conversion


def test_rows_fit_the_declared_types() -> None:
    schema = arrow.arrow_schema("sent_emails_by_template")
    table = arrow.rows_to_arrow([sent_row(), sent_row(template_key="t1", total=None)], schema)
    assert table is not None
    assert table.schema == schema
    assert table.column("total").to_pylist() == [3, None]
    # integers in a double column are widened, as dlt coerces them
    assert table.column("percentage_opened").to_pylist() == [33.0, 33.0]
    assert table.column("_queries_total").null_count == 2  # declared, never sent: null


@pytest.mark.parametrize(
    "overrides",
    [
        {"total": "n/a"},  # text in a bigint column: dlt makes a variant column
        {"total": 0.5},  # a fraction in a bigint column (pyarrow would truncate it to 0)
        {"is_shared": 1},  # a number in a bool column
        {"brand_new_field": "x"},  # a field Close added: dlt adds the column
        {"template_key": None},  # a null in a key column: dlt refuses it
        {"total": 2**70},  # beyond int64
    ],
)
def test_rows_that_do_not_fit_stay_dicts(overrides: Dict[str, Any]) -> None:
    schema = arrow.arrow_schema("sent_emails_by_template")
    odd = {"template_key": "t", **overrides}
    assert arrow.rows_to_arrow([sent_row(), sent_row(**odd)], schema) is None


def test_metric_columns_are_typed_by_suffix() -> None:
    schema = arrow.arrow_schema("activity_by_user", METRICS)
    assert schema.field("calls_all_all_count").type == pa.int64()
    assert schema.field("calls_all_all_avg_duration").type == pa.float64()
    assert not schema.field("user_id").nullable and schema.field("user_name").nullable


def comparison(data: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"data": data, "lookup": {"user": {"user_a": {"display": "Ann"}}}}


def test_comparison_table_equals_the_dict_rows() -> None:
    response = comparison(
        [
            {"user_id": "user_a", METRICS[0]: 2, METRICS[1]: 30, METRICS[2]: 0},
            {"user_id": "user_b", METRICS[0]: 0, METRICS[1]: None, METRICS[2]: 5},
        ]
    )
    schema = arrow.arrow_schema("activity_by_user", METRICS)
    context = {"org_id": "orga_1", "window": DAY, "timezone": "UTC"}
    table = arrow.activity_comparison_table(response, schema=schema, **context)
    rows = reshape.activity_comparison_rows(response, **context)
    assert table is not None
    assert table.equals(arrow.rows_to_arrow(rows, schema))
    assert table.column("user_name").to_pylist() == ["Ann", None]


@pytest.mark.parametrize(
    "data",
    [
        [{"user_id": "user_a", METRICS[0]: 1}, {"user_id": "user_a", METRICS[0]: 2}],
        [{"user_id": "user_a", METRICS[0]: "many"}],
        [{"user_id": "user_a", "new.metric.count": 1}],
        [{METRICS[0]: 1}],
    ],
)
def test_comparison_table_leaves_odd_responses_to_the_dict_path(data: List[Any]) -> None:
    schema = arrow.arrow_schema("activity_by_user", METRICS)
    table = arrow.activity_comparison_table(
        comparison(data), org_id="o", window=DAY, timezone="UTC", schema=schema
    )
    assert table is None


# ---------------------------------------------------------------- batches


def test_batcher_batches_converts_and_passes_misfits_through() -> None:
    schema = arrow.arrow_schema("sent_emails_by_template")
    batcher = arrow.Batcher(
        "sent_emails_by_template", schema, "1700000000.1", convert_rows=2, min_rows=4
    )
    out: List[Any] = []
    for day in range(5):
        window = Window(date(2026, 3, 1 + day), date(2026, 3, 2 + day))
        rows = [
            sent_row(window_start=window.start),
            sent_row(window_start=window.start, template_key="t"),
        ]
        if day == 2:
            rows[1]["total"] = "n/a"
        out.extend(batcher.add(rows))
    out.extend(batcher.flush())
    tables = [item for item in out if isinstance(item, pa.Table)]
    dicts = [item for item in out if isinstance(item, list)]
    assert [len(d) for d in dicts] == [2]  # the window with a text total, as dicts
    assert sum(t.num_rows for t in tables) == 8
    for table in tables:
        assert table.schema.names[-2:] == ["_dlt_load_id", "_dlt_id"]
        assert set(table.column("_dlt_load_id").to_pylist()) == {"1700000000.1"}
        assert table.column("_dlt_id").null_count == 0
    ids = [i for t in tables for i in t.column("_dlt_id").to_pylist()]
    assert len(set(ids)) == len(ids)


def test_batches_keep_each_key_once_the_last_row() -> None:
    schema = arrow.arrow_schema("sent_emails_by_template")
    batcher = arrow.Batcher("sent_emails_by_template", schema, None)
    out = list(batcher.add([sent_row(total=1), sent_row(template_key="t"), sent_row(total=2)]))
    out += list(batcher.flush())
    (table,) = out
    assert table.num_rows == 2
    assert sorted(
        zip(
            table.column("template_key").to_pylist(),
            table.column("total").to_pylist(),
            strict=True,
        )
    ) == [
        ("_all", 2),
        ("t", 3),
    ]
    rows = arrow.unique_rows([sent_row(total=1), sent_row(total=2)], TABLES["funnel_totals"][1])
    assert [r["total"] for r in rows] == [2]


def test_merge_tables_skip_dlts_dedup_pass() -> None:
    assert write_disposition("activity_by_user") == MERGE_DEDUPLICATED
    # dimensions too: each org's listing replaces that org's rows (merge key org_id)
    assert write_disposition("users") == MERGE_DEDUPLICATED


# ---------------------------------------------------------------- worker calls


def test_run_calls_runs_every_chunk_once_and_hands_back_failures() -> None:
    threads = set()

    def square(x: int) -> int:
        threads.add(threading.get_ident())
        time.sleep(0.001 * (x % 3))
        return x * x

    chunks = interleave([range(0, 25), range(25, 50)], 3)
    assert chunks[:2] == [[0, 1, 2], [25, 26, 27]]  # the groups' chunks taken in turn
    outcomes = list(run_calls(square, chunks, workers=4))
    assert sorted(outcomes) == [(x, x * x) for x in range(50)]
    assert len(threads) > 1
    assert chunk_size(730, 4) == 8 and chunk_size(30, 4) == 1

    def fail(x: int) -> int:
        if x == 7:
            raise ValueError("seven")
        return x

    outcomes = list(run_calls(fail, [[6, 7, 8], [9]], workers=3))
    failures = [(x, str(r)) for x, r in outcomes if isinstance(r, Exception)]
    assert failures == [(7, "seven")]
    # a chunk stops at its first failure; the other chunks run
    assert sorted(x for x, r in outcomes if not isinstance(r, Exception)) == [6, 9]
    skipped = list(run_calls(fail, [[1, 2, 3]], workers=1, skip=lambda x: x == 2))
    assert skipped == [(1, 1), (3, 3)]


def test_gate_narrows_for_cpu_bound_calls_and_stays_open_for_slow_networks() -> None:
    local = ConcurrencyGate(most=32, warm_up=2, spare=1)
    for _ in range(10):
        local.acquire()
        local.observe_round_trip(0.0002)
        local.release(cpu_seconds=0.002, requests=1)
    assert local.capacity == 3  # ceil(1 + 0.2 ms / 2 ms), plus one spare

    remote = ConcurrencyGate(most=32, warm_up=2)
    for _ in range(10):
        remote.acquire()
        remote.observe_round_trip(0.150)
        remote.release(cpu_seconds=0.002, requests=1)
    assert remote.capacity == 32


def test_gate_blocks_beyond_its_capacity() -> None:
    gate = ConcurrencyGate(most=1)
    gate.acquire()
    entered = threading.Event()

    def second() -> None:
        gate.acquire()
        entered.set()
        gate.release(0.0, 0)

    thread = threading.Thread(target=second)
    thread.start()
    assert not entered.wait(0.05)
    gate.release(0.0, 0)
    assert entered.wait(1.0)
    thread.join()


def test_parse_json_falls_back_to_the_standard_library() -> None:
    assert parse_json(b'{"a": [1, 0.5, null]}') == {"a": [1, 0.5, None]}
    assert parse_json(b'{"x": NaN}')["x"] != parse_json(b'{"x": NaN}')["x"]  # nan
    with pytest.raises(ValueError):
        parse_json(b'{"cut": [1, 2')


# ---------------------------------------------------------------- throttle against two quotas


class FixedWindow:
    """``limit`` requests per ``window`` seconds; ``reset`` counts down to the window's end."""

    def __init__(self, clock: FakeClock, limit: int, window: float) -> None:
        self.clock, self.limit, self.window = clock, limit, window
        self.used: Dict[int, int] = {}

    def check(self) -> tuple:
        index = int(self.clock.now // self.window)
        reset = (index + 1) * self.window - self.clock.now
        used = self.used.get(index, 0)
        if used >= self.limit:
            return False, f"limit={self.limit}, remaining=0, reset={reset:.3f}", reset
        self.used[index] = used + 1
        return (
            True,
            f"limit={self.limit}, remaining={self.limit - used - 1}, reset={reset:.3f}",
            reset,
        )


class Bucket:
    """The simulator's token bucket (burst = rate; ``reset`` = time until full)."""

    def __init__(self, clock: FakeClock, rate: float) -> None:
        from close_reports.simulator.faults import RateLimiter

        self.limiter = RateLimiter(rate, clock)

    def check(self) -> tuple:
        decision = self.limiter.check("key", "org")
        return decision.allowed, decision.header(), decision.reset


def drive(quota: Any, clock: FakeClock, requests: int, latency: float = 0.05) -> tuple:
    """Sends ``requests`` one after another through a Throttle; returns (429s, elapsed)."""
    from close_reports.source.throttle import Throttle

    throttle = Throttle(clock=clock, sleep=clock.sleep)
    started = clock.now
    rejected = 0
    for _ in range(requests):
        while True:
            ticket = throttle.acquire()
            allowed, header, reset = quota.check()
            clock.sleep(latency)
            throttle.observe({"RateLimit": header}, ticket)
            if allowed:
                break
            rejected += 1
            throttle.pause(reset)
    return rejected, clock.now - started, throttle


def test_throttle_paces_a_token_bucket_at_its_rate_without_429s() -> None:
    clock = FakeClock()
    rejected, elapsed, throttle = drive(Bucket(clock, 10), clock, 200)
    assert rejected == 0
    assert throttle._continuous
    # 200 requests at 10/s with a full bucket of 10 to start: ~19 s, not a second per burst
    assert elapsed < (200 - 10) / 10 * 1.1


def test_throttle_waits_for_a_fixed_windows_reset_without_429s() -> None:
    clock = FakeClock()
    rejected, elapsed, throttle = drive(FixedWindow(clock, 10, 1.0), clock, 100)
    assert rejected == 0
    assert not throttle._continuous
    assert elapsed >= 9.0


# ---------------------------------------------------------------- spool and memory


def _batch(start: int, count: int) -> pa.Table:
    return pa.table({"n": pa.array(range(start, start + count), pa.int64())})


def test_spool_keeps_batches_in_memory_then_on_disk_in_order() -> None:
    from close_reports.source.spool import Spool, _Budget

    budget = _Budget(_batch(0, 1000).nbytes * 2)  # two batches fit in memory
    spool = Spool(budget)
    parts: List[Any] = [_batch(i * 1000, 1000) for i in range(4)]
    parts.insert(2, [{"a": 1, "b": {"c": [1, 2]}}])  # dict rows: pickled
    for i, part in enumerate(parts):
        spool.add("u1", f"t{i}", part)
    spool.add("u2", "t", _batch(99, 1))
    assert budget.free == 0
    assert spool._file is not None  # the rest went to the file
    drained = list(spool.drain("u1"))
    assert [t for t, _ in drained] == [f"t{i}" for i in range(5)]
    for (_, got), want in zip(drained, parts, strict=True):
        assert got == want if isinstance(want, list) else got.equals(want)
    assert list(spool.drain("u1")) == []
    assert [p.to_pylist() for _, p in spool.drain("u2")] == [[{"n": 99}]]
    spool.close()
    assert budget.free == _batch(0, 1000).nbytes * 2  # everything given back


def test_spool_discard_gives_the_memory_back() -> None:
    from close_reports.source.spool import Spool, _Budget

    budget = _Budget(10_000_000)
    spool = Spool(budget)
    spool.add("u", "t", _batch(0, 1000))
    assert budget.free < 10_000_000
    spool.discard("u")
    assert budget.free == 10_000_000
    assert list(spool.drain("u")) == []
    spool.close()
    assert budget.free == 10_000_000


def test_memory_configure_and_release_are_safe_to_repeat() -> None:
    from close_reports.source import memory

    memory.configure()
    memory.configure()
    memory.release()
    # close_reports chose the system pool before pyarrow was first imported
    assert pa.default_memory_pool().backend_name == "system"
