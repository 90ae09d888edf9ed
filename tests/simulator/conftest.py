"""Shared fixtures: one small organization per session, its exported event log in DuckDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import duckdb
import httpx
import pytest

from close_reports.simulator import CloseSimulator, Org, events_to_duckdb, generate_org

ANCHOR = date(2026, 3, 20)
"""Last day of history: the 60 days of the small org span the US DST start (2026-03-08)."""
SEED = 7


@pytest.fixture(scope="session")
def org() -> Org:
    """The shared small organization (never mutate it; use ``fresh_org``)."""
    return generate_org(SEED, "small", ANCHOR)


@pytest.fixture()
def fresh_org() -> Org:
    """A private small organization a test may mutate."""
    return generate_org(SEED, "small", ANCHOR)


@pytest.fixture(scope="session")
def duck(org: Org) -> Iterator[duckdb.DuckDBPyConnection]:
    """In-memory DuckDB holding the exported event log in schema ``close_sim``."""
    con = duckdb.connect()
    events_to_duckdb(org, con)
    yield con
    con.close()


@pytest.fixture(scope="session")
def simulator(org: Org) -> CloseSimulator:
    """A knob-free simulator serving ``org`` under the key ``demo``."""
    return CloseSimulator(org)


@pytest.fixture()
def client(simulator: CloseSimulator) -> Iterator[httpx.Client]:
    """An in-process client (MockTransport) for the shared simulator."""
    with simulator.client() as c:
        yield c
