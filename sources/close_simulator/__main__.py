"""``python -m close_reports.simulator``: serve a synthetic Close organization over HTTP.

Prints exactly one line once listening::

    Close simulator listening on http://HOST:PORT/api/v1 (org orga_…, scale S, seed N)
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
        "--rate-limit", type=float, default=None, help="requests/second per key (off by default)"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="fraction of requests with injected faults"
    )
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the server until interrupted (Ctrl-C or SIGTERM)."""
    args = build_parser().parse_args(argv)
    org = generate_org(args.seed, args.scale, args.anchor_date)
    keys = args.api_key or ["demo"]
    simulator = CloseSimulator(
        api_keys={key: org for key in keys},
        rate_limit=args.rate_limit,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        fault_seed=args.fault_seed,
    )
    simulator.warm_up()
    server, thread = serve(simulator, args.host, args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    print(
        f"Close simulator listening on {server.url} "
        f"(org {org.id}, scale {args.scale}, seed {args.seed})",
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
