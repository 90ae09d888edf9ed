"""An embedded Close API whose reports are computed from a synthetic organization's events.

Public API::

    generate_org(seed=1, scale="small", anchor_date=None, *, horizon_days=0, late_wins=0.0)
        -> Org
        Deterministic organization: users, groups, Smart Views, lead statuses (one deleted),
        pipelines, templates, lead custom fields (MRR, Seats, Plan, Renewal Date) and a
        timestamped event history ending on ``anchor_date`` (default yesterday, UTC), plus
        ``horizon_days`` of future activity that becomes visible as the simulator's now
        advances. ``late_wins``: fraction of wins entered late with an earlier
        ``date_won``. Scales: small (6 users / 60 days), medium (25 / 365), large (200 /
        730). ``Org.add_call / add_email / add_sms / add_lead / add_lead_status_change /
        add_opportunity / add_opportunity_status_change`` edit the past (late data).

    CloseSimulator(org=None, *, api_keys=None, rate_limit=None, latency_ms=0.0,
                   fault_rate=0.0, fault_seed=0, fault_kinds=FAULT_KINDS,
                   clock=time.monotonic, sleep=time.sleep, wall_clock=time.time,
                   now=None, refuse=None)
        .handle(httpx.Request) -> httpx.Response   one request
        .transport() -> httpx.MockTransport         in-process use
        .client(api_key="demo", base_url=...) -> httpx.Client
        .now -> int | None                          the current now (epoch seconds)
        .advance_to(instant | callable | None)      set now; reports answer as of it
        .advance(days=0, hours=0, seconds=0)        move now forward
        .until(org) -> int                          exclusive bound of visible events
        .refuse: dict[prefix, (status, message)]    refused endpoints (editable)
        .stats() -> dict                            counters (also GET /__simulator__/stats)
        .request_log: list[RequestRecord]           every request (no Authorization header)
        .reset_stats(), .warm_up()

    serve(simulator, host="127.0.0.1", port=0) -> (server, thread)
        The same handler as a threaded HTTP server; ``server.url`` is ``http://H:P/api/v1``.
        ``GET``/``POST /__simulator__/now`` read / set now.

    export_events(org, path, *, as_of=None) -> {table: parquet path}
    events_to_duckdb(org, con_or_path, schema="close_sim", *, as_of=None) -> {table: rows}
    event_tables(org, as_of=None) -> {table: pyarrow.Table}
        The raw event log (UTC timestamps) for independent expected-value computations;
        ``as_of`` keeps only what had happened at that instant.

Command line: ``python -m close_reports.simulator --port 8765 [--seed N] [--scale S]
[--anchor-date YYYY-MM-DD] [--horizon-days N] [--late-wins F] [--now INSTANT]
[--refuse PREFIX=STATUS[:MESSAGE]] [--api-key KEY] [--rate-limit RPS] [--latency-ms MS]
[--fault-rate F]``. Endpoint semantics: ``docs/simulator.md``.
"""

from .export import event_tables, events_to_duckdb, export_events
from .faults import FAULT_KINDS
from .handler import CloseSimulator, DroppedConnection, RequestRecord
from .org import Org, generate_org
from .server import SimulatorHTTPServer, serve
from .timeutil import Instant, to_epoch

__all__ = [
    "FAULT_KINDS",
    "CloseSimulator",
    "DroppedConnection",
    "Instant",
    "Org",
    "RequestRecord",
    "SimulatorHTTPServer",
    "event_tables",
    "events_to_duckdb",
    "export_events",
    "generate_org",
    "serve",
    "to_epoch",
]
