"""Helpers shared by the benchmarks: machine description, results files, simulator process."""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# No telemetry, no config from the developer's shell leaking into a benchmark.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
for _name in list(os.environ):
    if _name.startswith(("SOURCES__CLOSE__", "DESTINATION__")):
        del os.environ[_name]

from close_reports.source.settings import EXAMPLE_CUSTOM_REPORTS  # noqa: E402

BENCH_CUSTOM_REPORTS: List[Dict[str, Any]] = [dict(r) for r in EXAMPLE_CUSTOM_REPORTS]
"""The two Explorer queries of ``.dlt/config.toml``, passed explicitly so the run does not
depend on the working directory."""


def use_project_config() -> None:
    """Run from the repository root, so dlt reads the project's ``.dlt/config.toml`` (load
    workers, log level) as the command line does, wherever the bench was started from."""
    os.chdir(ROOT)


def dlt_settings() -> Dict[str, Any]:
    """The dlt settings that change the figures, as the project's config resolves them."""
    import dlt

    return {
        "load.workers": dlt.config.get("load.workers"),
        "normalize.workers": dlt.config.get("normalize.workers"),
        "dlt": dlt.__version__,
    }


def duckdb_pipeline(folder: Path, name: str, duckdb_path: Optional[Path] = None) -> Any:
    """A dlt pipeline ``name`` keeping its working dir under ``folder`` and loading dataset
    ``close_raw`` into ``duckdb_path`` (default ``folder/close.duckdb``)."""
    import dlt

    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(folder / "pipelines"),
        destination=dlt.destinations.duckdb(str(duckdb_path or folder / "close.duckdb")),
        dataset_name="close_raw",
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> Dict[str, Any]:
    """Where the figures come from."""
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status`` (``ru_maxrss`` survives ``execve``, so a
    child started from a big process would report its parent's size); elsewhere
    ``ru_maxrss``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / (1024.0 * 1024.0)


def write_result(name: str, quick: bool, payload: Dict[str, Any]) -> Path:
    """Writes ``bench/results/<name>[-quick].json`` and returns its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}{'-quick' if quick else ''}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
    return path


def report_result(
    name: str, quick: bool, write: bool, details: Dict[str, Any], result: Dict[str, Any]
) -> None:
    """Writes the details file (unless ``write`` is false), then prints the result JSON as the
    last line, which is what readers of a benchmark's output parse."""
    if write:
        path = write_result(name, quick, details)
        print(f"written: {path.relative_to(ROOT)}")
    print(json.dumps(result))


_LISTENING = re.compile(r"listening on (\S+)")


class SimulatorProcess:
    """``python -m close_reports.simulator`` on a free port, as a real HTTP server."""

    def __init__(self, args: List[str], timeout: float = 120.0) -> None:
        command = [sys.executable, "-m", "close_reports.simulator", "--port", "0", *args]
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line or self.process.poll() is not None:
                break
        match = _LISTENING.search(line)
        if match is None:
            error = self.process.stderr.read() if self.process.stderr else ""
            self.stop()
            raise RuntimeError(f"simulator did not start: {line!r} {error[-2000:]}")
        self.url: str = match.group(1)
        self.banner = line.strip()
        self.startup_s = time.perf_counter() - self.started

    @property
    def root(self) -> str:
        """``http://HOST:PORT`` (the stats endpoint lives at ``/__simulator__/stats``)."""
        return self.url.split("/api/")[0]

    def stats(self) -> Dict[str, Any]:
        import httpx

        response = httpx.get(f"{self.root}/__simulator__/stats", timeout=30)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "SimulatorProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def fmt_table(rows: List[List[Any]]) -> str:
    """A plain aligned text table (first row = header)."""
    text = [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(text[0]))]
    lines = []
    for n, row in enumerate(text):
        lines.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
