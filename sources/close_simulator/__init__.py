"""An embedded Close API whose reports are computed from a synthetic organization's events.

Public API::

    generate_org(seed=1, scale="small", anchor_date=None) -> Org
        Deterministic organization: users, groups, Smart Views, lead statuses (one deleted),
        pipelines, templates and a timestamped event history ending on ``anchor_date``
        (default yesterday, UTC). Scales: small (6 users / 60 days), medium (25 / 365),
        large (200 / 730). ``Org.add_call / add_email / add_sms / add_lead /
        add_lead_status_change / add_opportunity / add_opportunity_status_change`` edit the
        past (late data); reports recompute on the next request.

    CloseSimulator(org=None, *, api_keys=None, rate_limit=None, latency_ms=0.0,
                   fault_rate=0.0, fault_seed=0, fault_kinds=FAULT_KINDS,
                   clock=time.monotonic, sleep=time.sleep, wall_clock=time.time)
        .handle(httpx.Request) -> httpx.Response   one request
        .transport() -> httpx.MockTransport         in-process use
        .client(api_key="demo", base_url=...) -> httpx.Client
        .stats() -> dict                            counters (also GET /__simulator__/stats)
        .request_log: list[RequestRecord]           every request (no Authorization header)
        .reset_stats(), .warm_up()

    serve(simulator, host="127.0.0.1", port=0) -> (server, thread)
        The same handler as a threaded HTTP server; ``server.url`` is ``http://H:P/api/v1``.

    export_events(org, path) -> {table: parquet path}
    events_to_duckdb(org, con_or_path, schema="close_sim") -> {table: rows}
        The raw event log (UTC timestamps) for independent expected-value computations.

Command line: ``python -m close_reports.simulator --port 8765 [--seed N] [--scale S]
[--anchor-date YYYY-MM-DD] [--api-key KEY] [--rate-limit RPS] [--latency-ms MS]
[--fault-rate F]``. Endpoint semantics: ``docs/simulator.md``.
"""

from .export import event_tables, events_to_duckdb, export_events
from .faults import FAULT_KINDS
from .handler import CloseSimulator, DroppedConnection, RequestRecord
from .org import Org, generate_org
from .server import SimulatorHTTPServer, serve

__all__ = [
    "FAULT_KINDS",
    "CloseSimulator",
    "DroppedConnection",
    "Org",
    "RequestRecord",
    "SimulatorHTTPServer",
    "event_tables",
    "events_to_duckdb",
    "export_events",
    "generate_org",
    "serve",
]
