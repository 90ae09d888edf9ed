"""`close-pipeline serve-demo-api`, `python -m close_reports.simulator` and `run --demo` share
one set of demo defaults (close_reports.simulator.defaults)."""

from close_reports import close_pipeline
from close_reports.simulator import __main__ as simulator_cli
from close_reports.simulator import defaults


def test_serve_demo_api_and_the_simulator_module_share_their_defaults() -> None:
    served = close_pipeline.build_parser().parse_args(["serve-demo-api"])
    module = simulator_cli.build_parser().parse_args([])
    assert (served.seed, served.scale) == (module.seed, module.scale)
    assert (served.seed, served.scale) == (defaults.SEED, defaults.SCALE)
    assert (close_pipeline.DEMO_SEED, close_pipeline.DEMO_SCALE) == (defaults.SEED, defaults.SCALE)
    assert served.port == module.port and served.host == module.host
