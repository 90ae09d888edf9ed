"""The whole command line against a real PostgreSQL server: load, dbt build, dbt test.

A module fixture starts a throwaway PostgreSQL server (``initdb`` + ``pg_ctl``, trust auth, a
free port, a temporary directory; as user ``nobody`` when the tests run as root, since
Postgres refuses to run as root), serves a small simulated Close org over HTTP in-process, and
runs ``close-pipeline run`` twice as subprocesses, side by side, on the same org and window:
``--destination postgres`` and the default DuckDB destination. The tests check that the
Postgres run succeeds, that every raw table and every mart has rows, and that the marts hold
the same numbers on both warehouses.

Needs the PostgreSQL server binaries: the system's (on PATH or under ``/usr/lib/postgresql/*/bin``)
or those of the ``pgserver`` wheel, a dev dependency (``pip install -e '.[dev]'``), so a machine
with only Python, pip and make runs them. Without either the tests fail, they do not skip.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import glob
import importlib.util
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from close_reports.simulator import CloseSimulator, generate_org, serve
from close_reports.source.settings import TABLES
from tests.utils import SEED

pytestmark = pytest.mark.postgres

REPO_ROOT = Path(__file__).resolve().parents[2]
MARTS = sorted(path.stem for path in (REPO_ROOT / "dbt" / "models" / "marts").glob("*.sql"))
CLOSE_PIPELINE = Path(sys.executable).with_name("close-pipeline")
RAW_SCHEMA, MARTS_SCHEMA = "close_raw", "close_marts"
PG_USER, PG_DB = "postgres", "close"
CUSTOM_REPORTS = [  # one Explorer query, so that `custom_reports` is loaded too
    {"name": "leads_per_day", "x": "lead.date_created", "y": "lead.count", "interval": "day"}
]
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH, under "
    "/usr/lib/postgresql/*/bin, nor in the pgserver wheel. tests/postgres starts a real "
    "PostgreSQL server: `pip install -e '.[dev]'` (installs pgserver), or install the server "
    "with `apt-get install postgresql` (Debian / Ubuntu)."
)


# ---------------------------------------------------------------- a throwaway Postgres server


def pgserver_bin_dir() -> Path | None:
    """The server binaries shipped in the ``pgserver`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("pgserver")
    for location in (spec.submodule_search_locations or []) if spec else []:
        bin_dir = Path(location) / "pginstall" / "bin"
        if (bin_dir / "initdb").exists() and (bin_dir / "pg_ctl").exists():
            return bin_dir
    return None


def postgres_bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl: CLOSE_PG_BIN_DIR, PATH, the newest Debian
    install, else the pgserver wheel's."""
    chosen = os.environ.get("CLOSE_PG_BIN_DIR")
    if chosen:
        return Path(chosen)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    for initdb in reversed(candidates):
        if Path(initdb).with_name("pg_ctl").exists():
            return Path(initdb).parent
    return pgserver_bin_dir()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path  # owned by the server's user: data/, sock/, log
    port: int
    as_user: list[str]  # prefix running a command as the unprivileged user ([] if not root)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [*self.as_user, str(self.bin_dir / tool), *args]
        result = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n"
                f"{result.stderr}\n{log[-3000:]}"
            )

    def start(self) -> None:
        # C locale: text sorts by code point, as in DuckDB, whatever the host's locale is
        initdb_options = ["-U", PG_USER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]
        self.run("initdb", "-D", str(self.data_dir), *initdb_options)
        (self.root / "sock").mkdir()
        if self.as_user:
            shutil.chown(self.root / "sock", user="nobody")
        options = (
            f"-p {self.port} -k {self.root / 'sock'} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        start = ["-o", options, "-l", str(self.log_file), "-w", "-t", "60", "start"]
        self.run("pg_ctl", "-D", str(self.data_dir), *start)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def connect(self, dbname: str = PG_DB) -> Any:
        import psycopg2  # dlt[postgres]

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=PG_USER, dbname=dbname)

    def create_database(self, name: str) -> None:
        con = self.connect("postgres")
        con.autocommit = True
        with con.cursor() as cursor:
            cursor.execute(f"create database {name}")
        con.close()


def reachable_bin_dir(bin_dir: Path, as_user: list[str], root: Path) -> Path:
    """``bin_dir``, or a copy under ``root`` when the unprivileged user cannot run it (a venv
    inside a directory private to root). pgserver's binaries find their libraries at
    ``../../../pgserver.libs``, so that folder is copied beside them."""
    probe = subprocess.run([*as_user, "test", "-x", str(bin_dir / "initdb")], check=False)
    if probe.returncode == 0:
        return bin_dir
    install = bin_dir.parent  # pginstall/ (bin, lib, share)
    copy = root / "site" / install.parent.name / install.name
    shutil.copytree(install, copy, symlinks=True)
    libs = install.parent.parent / f"{install.parent.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, root / "site" / libs.name, symlinks=True)
    subprocess.run(["chmod", "-R", "a+rX", str(root / "site")], check=True)
    return copy / "bin"


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    as_user: list[str] = []
    if os.geteuid() == 0:  # Postgres refuses to run as root
        runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
        assert runuser, "running as root and `runuser` (util-linux) is missing"
        as_user = [runuser, "-u", "nobody", "--"]
    # Not under pytest's tmp_path: its parents are private to root, and `nobody` must get in.
    root = Path(tempfile.mkdtemp(prefix="close-pg-"))
    if as_user:
        shutil.chown(root, user="nobody")
        bin_dir = reachable_bin_dir(bin_dir, as_user, root)
    server = PostgresServer(bin_dir=bin_dir, root=root, port=free_port(), as_user=as_user)
    try:
        server.start()
        server.create_database(PG_DB)
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- the two loads


def report_window(today: dt.date) -> tuple[dt.date, dt.date]:
    """14 days [start, end) across a month boundary: the last 7 days of a month and the first
    7 of the next, the latest such window that ended before ``today``."""
    month = today.replace(day=1) if today.day > 7 else (today.replace(day=1) - dt.timedelta(1))
    end = month.replace(day=8)
    return end - dt.timedelta(days=14), end


def clean_environment() -> dict[str, str]:
    """This process's environment without any Close, destination, warehouse or dbt settings."""
    prefixes = ("SOURCES__CLOSE__", "DESTINATION__", "CLOSE_DUCKDB_PATH", "CLOSE_PG_", "DBT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update({"RUNTIME__DLTHUB_TELEMETRY": "false", "DO_NOT_TRACK": "1"})
    return env


@dataclass
class Loads:
    postgres: PostgresServer
    duckdb_path: Path
    results: dict[str, subprocess.CompletedProcess[str]]
    seconds: float

    def pg_rows(self, sql: str) -> list[tuple[Any, ...]]:
        con = self.postgres.connect()
        try:
            with con.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall())
        finally:
            con.close()

    def duck_rows(self, sql: str) -> list[tuple[Any, ...]]:
        con = duckdb.connect(str(self.duckdb_path), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


def start_run(
    destination: str, work_dir: Path, base_url: str, window: tuple[dt.date, dt.date], **env: str
) -> subprocess.Popen[str]:
    work_dir.mkdir(parents=True)
    command = [str(CLOSE_PIPELINE), "run", "--destination", destination]
    command += ["--start", window[0].isoformat(), "--end", window[1].isoformat()]
    if destination == "duckdb":
        command += ["--duckdb-path", str(work_dir / "close.duckdb")]
    run_env = clean_environment()
    run_env.update(
        SOURCES__CLOSE__BASE_URL=base_url,
        SOURCES__CLOSE__API_KEY="demo",
        SOURCES__CLOSE__TIMEZONE="UTC",
        SOURCES__CLOSE__CUSTOM_REPORTS=json.dumps(CUSTOM_REPORTS),
        DLT_DATA_DIR=str(work_dir / "dlt"),
        # dbt's target/ and logs/ away from the repo (and from the other run)
        DBT_TARGET_PATH=str(work_dir / "dbt_target"),
        DBT_LOG_PATH=str(work_dir / "dbt_logs"),
        **env,
    )
    with open(work_dir / "output.log", "w") as output:  # a file: no pipe to fill up
        return subprocess.Popen(
            command,
            cwd=work_dir,  # no .dlt/ here: every setting comes from the environment above
            env=run_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture(scope="module")
def loads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loads]:
    assert CLOSE_PIPELINE.exists(), f"{CLOSE_PIPELINE} missing: pip install -e '.[dev]'"
    work = tmp_path_factory.mktemp("postgres_destination")
    today = dt.datetime.now(dt.UTC).date()
    window = report_window(today)
    org = generate_org(seed=SEED, scale="small", anchor_date=window[1] - dt.timedelta(days=1))
    http, _ = serve(CloseSimulator(org), port=0)
    started = time.monotonic()
    try:
        with postgres_server() as postgres:
            pg_url = f"postgresql://{PG_USER}:unused@127.0.0.1:{postgres.port}/{PG_DB}"
            pg_env = {
                "DESTINATION__POSTGRES__CREDENTIALS": pg_url,  # dlt wants a password, any will do
                "CLOSE_PG_HOST": "127.0.0.1",  # dbt's postgres target (dbt/profiles.yml)
                "CLOSE_PG_PORT": str(postgres.port),
                "CLOSE_PG_USER": PG_USER,
                "CLOSE_PG_DBNAME": PG_DB,
            }
            # the two loads run side by side: same simulator, org and window
            processes = {
                "postgres": start_run("postgres", work / "postgres", http.url, window, **pg_env),
                "duckdb": start_run("duckdb", work / "duckdb", http.url, window),
            }
            results = {}
            for name, process in processes.items():
                try:
                    process.wait(timeout=240)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                output = (work / name / "output.log").read_text()
                results[name] = subprocess.CompletedProcess(
                    process.args, process.returncode, output
                )
            yield Loads(
                postgres=postgres,
                duckdb_path=work / "duckdb" / "close.duckdb",
                results=results,
                seconds=time.monotonic() - started,
            )
    finally:
        http.shutdown()
        http.server_close()


# ---------------------------------------------------------------- comparing the warehouses


def normalized(value: Any) -> Any:
    """One comparable form for a value read from DuckDB or Postgres."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float | decimal.Decimal):
        number = float(value)
        return "nan" if math.isnan(number) else round(number, 9)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def sorted_rows(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted((tuple(normalized(v) for v in row) for row in rows), key=repr)


def rows_missing_from(
    rows: list[tuple[Any, ...]], other: list[tuple[Any, ...]], columns: list[str]
) -> list[dict[str, Any]]:
    """The first 3 of ``rows`` that ``other`` lacks, as column -> value."""
    present = set(other)
    return [dict(zip(columns, row, strict=True)) for row in rows if row not in present][:3]


def columns_of(loads: Loads, warehouse: str, table: str) -> list[str]:
    sql = (
        "select column_name from information_schema.columns "
        f"where table_schema = '{MARTS_SCHEMA}' and table_name = '{table}' "
        "order by ordinal_position"
    )
    rows = loads.pg_rows(sql) if warehouse == "postgres" else loads.duck_rows(sql)
    return [name for (name,) in rows]


# ---------------------------------------------------------------- tests


def test_postgres_server_binaries_installed() -> None:
    assert postgres_bin_dir() is not None, INSTALL_HINT


def test_run_to_postgres_exits_zero(loads: Loads) -> None:
    for name, result in loads.results.items():
        assert result.returncode == 0, f"close-pipeline run ({name}):\n{result.stdout[-6000:]}"
    print(f"both loads and dbt builds: {loads.seconds:.1f} s")


def test_every_raw_table_loaded(loads: Loads) -> None:
    counts: dict[str, int | None] = {}
    for table in TABLES:
        [(exists,)] = loads.pg_rows(f"select to_regclass('{RAW_SCHEMA}.{table}') is not null")
        sql = f"select count(*) from {RAW_SCHEMA}.{table}"
        counts[table] = loads.pg_rows(sql)[0][0] if exists else None
    empty = {table: n for table, n in counts.items() if not n}
    assert not empty, f"raw tables missing (None) or empty in Postgres: {empty}"


def test_every_mart_built_and_non_empty(loads: Loads) -> None:
    assert loads.results["postgres"].returncode == 0
    built = {
        name
        for (name,) in loads.pg_rows(
            "select table_name from information_schema.tables "
            f"where table_schema = '{MARTS_SCHEMA}'"
        )
    }
    assert set(MARTS) <= built, f"marts missing in Postgres: {sorted(set(MARTS) - built)}"
    counts = {m: loads.pg_rows(f"select count(*) from {MARTS_SCHEMA}.{m}")[0][0] for m in MARTS}
    assert all(counts.values()), f"empty marts in Postgres: {counts}"


def test_headline_numbers_equal_duckdb(loads: Loads) -> None:
    """The numbers a reader looks at first, the same on both warehouses."""
    assert all(result.returncode == 0 for result in loads.results.values())
    queries = {
        "user activity totals": f"""
            select count(*), sum(calls_count), sum(calls_duration_seconds),
                sum(emails_sent_count), sum(leads_contacted_count),
                sum(opportunities_won_one_time_value_cents)
            from {MARTS_SCHEMA}.fct_user_activity_daily""",
        "status months": f"""
            select object_type, window_start_date, count(*), sum(count_started),
                sum(count_ended), sum(count_entered), sum(count_left)
            from {MARTS_SCHEMA}.fct_status_monthly
            group by object_type, window_start_date
            order by object_type, window_start_date""",
        "scorecard": f"""
            select user_id, month_start_date, calls_count, emails_sent_count, win_rate,
                average_time_to_win_days
            from {MARTS_SCHEMA}.rpt_rep_scorecard
            order by user_id, month_start_date""",
    }
    for label, sql in queries.items():
        on_postgres = sorted_rows(loads.pg_rows(sql))
        on_duckdb = sorted_rows(loads.duck_rows(sql))
        assert on_postgres == on_duckdb, label
        assert on_postgres, label
    [(months,)] = loads.pg_rows(
        f"select count(distinct window_start_date) from {MARTS_SCHEMA}.fct_status_monthly"
    )
    assert months == 2, "the window crosses a month boundary"


@pytest.mark.parametrize("mart", MARTS)
def test_mart_equals_duckdb(loads: Loads, mart: str) -> None:
    """Every mart, row for row: same columns in the same order, same values (floats to 9
    decimals, timestamps in UTC), on Postgres as on DuckDB."""
    assert all(result.returncode == 0 for result in loads.results.values())
    assert columns_of(loads, "postgres", mart) == columns_of(loads, "duckdb", mart)
    # `_dlt_load_id` (the incremental marts' watermark) names each warehouse's own load
    columns = [c for c in columns_of(loads, "duckdb", mart) if not c.startswith("_dlt_")]
    quoted = ", ".join(f'"{column}"' for column in columns)
    select = f"select {quoted} from {MARTS_SCHEMA}.{mart}"
    on_postgres = sorted_rows(loads.pg_rows(select))
    on_duckdb = sorted_rows(loads.duck_rows(select))
    if on_postgres != on_duckdb:
        only_postgres = rows_missing_from(on_postgres, on_duckdb, columns)
        only_duckdb = rows_missing_from(on_duckdb, on_postgres, columns)
        pytest.fail(
            f"{mart}: {len(on_postgres)} rows on Postgres, {len(on_duckdb)} on DuckDB; "
            f"only on Postgres (first 3): {only_postgres}; "
            f"only on DuckDB (first 3): {only_duckdb}"
        )
