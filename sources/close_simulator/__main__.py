"""``python -m close_reports.simulator``: serve a synthetic Close organization over HTTP.

Prints exactly one line once listening::

    Close simulator listening on http://HOST:PORT/api/v1 (org orga_…, scale S, seed N)

``--horizon-days`` / ``--now`` / ``--late-wins`` give a Close whose past keeps changing
(``POST /__simulator__/now {"now": "YYYY-MM-DD"}`` moves now); ``--refuse PREFIX=STATUS``
makes endpoints refuse (a plan-gated report).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import date
from types import FrameType

from . import defaults
from .handler import CloseSimulator
from .org import SCALES, generate_org
from .server import serve
from .timeutil import to_epoch


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m close_reports.simulator",
        description="Serve an embedded Close API computed from a synthetic organization.",
    )
    parser.add_argument("--port", type=int, default=8765, help="TCP port (0 = a free port)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.SEED,
        help=f"organization seed (default {defaults.SEED})",
    )
    parser.add_argument(
        "--scale",
        choices=sorted(SCALES),
        default=defaults.SCALE,
        help=f"org size (default {defaults.SCALE})",
    )
    parser.add_argument(
        "--anchor-date",
        type=date.fromisoformat,
        default=None,
        help="last day of history, YYYY-MM-DD (default: yesterday UTC)",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        default=None,
        help="accepted API key (repeatable; default: demo)",
    )
    parser.add_argument(
        "--orgs",
        type=int,
        default=1,
        help="serve this many distinct organizations (seeds SEED, SEED+1, ...); their keys are "
        "the --api-key values followed by -2, -3, ... (default keys demo, demo-2, ...)",
    )
    parser.add_argument(
        "--rate-limit", type=float, default=None, help="requests/second per key (off by default)"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="fraction of requests with injected faults"
    )
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")
    parser.add_argument(
        "--horizon-days",
        type=int,
        default=0,
        help="days of activity generated after the anchor, visible once now reaches them",
    )
    parser.add_argument(
        "--late-wins",
        type=float,
        default=0.0,
        help="fraction of wins entered late with an earlier date_won (default 0)",
    )
    parser.add_argument(
        "--now",
        type=_instant,
        default=None,
        help="the simulator's now: YYYY-MM-DD (its 00:00 UTC) or an ISO datetime "
        "(default: the day after the anchor, 00:00); POST /__simulator__/now moves it",
    )
    parser.add_argument(
        "--refuse",
        action="append",
        default=None,
        type=_refusal,
        metavar="PREFIX=STATUS[:MESSAGE]",
        help="answer every request under PREFIX (relative to /api/v1) with STATUS, e.g. "
        "--refuse /report/funnel/=403 (repeatable)",
    )
    return parser


def _instant(text: str) -> str:
    try:
        to_epoch(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"not a date or ISO datetime: {text!r}") from exc
    return text


def _refusal(text: str) -> tuple[str, tuple[int, str] | int]:
    prefix, sep, rest = text.partition("=")
    status_text, colon, message = rest.partition(":")
    if not sep or not prefix or not status_text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected PREFIX=STATUS[:MESSAGE], got {text!r}")
    status = int(status_text)
    if not 400 <= status <= 599:
        raise argparse.ArgumentTypeError(f"STATUS must be 4xx or 5xx, got {status}")
    return prefix, ((status, message) if colon and message else status)


def main(argv: list[str] | None = None) -> int:
    """Runs the server until interrupted (Ctrl-C or SIGTERM)."""
    args = build_parser().parse_args(argv)
    orgs = [
        generate_org(
            args.seed + n,
            args.scale,
            args.anchor_date,
            horizon_days=args.horizon_days,
            late_wins=args.late_wins,
        )
        for n in range(max(1, args.orgs))
    ]
    org = orgs[0]
    keys = args.api_key or ["demo"]
    api_keys = {key: org for key in keys}
    for n, other in enumerate(orgs[1:], start=2):
        api_keys.update({f"{key}-{n}": other for key in keys})
    simulator = CloseSimulator(
        api_keys=api_keys,
        rate_limit=args.rate_limit,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        fault_seed=args.fault_seed,
        now=args.now,
        refuse=dict(args.refuse or []),
    )
    simulator.warm_up()
    server, thread = serve(simulator, args.host, args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    print(
        f"Close simulator listening on {server.url} "
        f"(org {org.id}, scale {args.scale}, seed {args.seed}"
        + (f", {len(orgs)} orgs: keys {', '.join(api_keys)}" if len(orgs) > 1 else "")
        + ")",
        flush=True,
    )
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
