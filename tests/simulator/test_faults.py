"""Rate limiting, latency, fault injection and the request log / counters (fake clocks)."""

from __future__ import annotations

import math
import re

import httpx
import pytest

from close_reports.simulator import CloseSimulator, Org, generate_org
from tests.utils import FakeClock

from .conftest import ANCHOR

HEADER = re.compile(r"^limit=(\d+), remaining=(\d+), reset=(\d+(?:\.\d+)?)$")


def limited(org: Org, clock: FakeClock, rate: float = 5, **kwargs) -> CloseSimulator:
    return CloseSimulator(org, rate_limit=rate, clock=clock, sleep=clock.sleep, **kwargs)


def test_burst_draws_429s_with_headers_and_body(org: Org) -> None:
    clock = FakeClock()
    simulator = limited(org, clock)
    with simulator.client() as client:
        responses = [client.get("/me/") for _ in range(40)]
    ok = [r for r in responses if r.status_code == 200]
    rejected = [r for r in responses if r.status_code == 429]
    assert len(ok) == 5 and len(rejected) == 35
    for response in responses:
        match = HEADER.match(response.headers["RateLimit"])
        assert match, response.headers["RateLimit"]
        assert int(match.group(1)) == 5
    assert [int(HEADER.match(r.headers["RateLimit"]).group(2)) for r in ok] == [4, 3, 2, 1, 0]
    for response in rejected:
        body = response.json()["error"]
        assert body["message"] == "API call count exceeded for this 1 second window"
        assert body["rate_limit"] == 5 and body["rate_window"] == 1
        assert body["rate_limit_type"] == "key"
        assert body["rate_reset"] == pytest.approx(0.2)
        assert response.headers["Retry-After"] == str(math.ceil(body["rate_reset"]))
        assert float(HEADER.match(response.headers["RateLimit"]).group(3)) == pytest.approx(0.2)
    stats = simulator.stats()
    assert stats["requests"] == 40 and stats["rate_limited"] == 35
    assert stats["by_status"] == {"200": 5, "429": 35}


def test_tokens_refill_with_the_clock(org: Org) -> None:
    clock = FakeClock()
    simulator = limited(org, clock, rate=4)
    with simulator.client() as client:
        assert [client.get("/me/").status_code for _ in range(5)] == [200] * 4 + [429]
        clock.now += 0.25
        assert client.get("/me/").status_code == 200
        assert client.get("/me/").status_code == 429
        clock.now += 10
        assert [client.get("/me/").status_code for _ in range(4)] == [200] * 4
        reset = float(HEADER.match(client.get("/me/").headers["RateLimit"]).group(3))
        assert reset == pytest.approx(0.25)


def test_organization_limit_is_three_times_the_key_limit(org: Org) -> None:
    clock = FakeClock()
    keys = {f"key{i}": org for i in range(5)}
    simulator = CloseSimulator(api_keys=keys, rate_limit=2, clock=clock, sleep=clock.sleep)
    statuses: dict[str, list[int]] = {}
    bodies = []
    for key in keys:
        with simulator.client(api_key=key) as client:
            responses = [client.get("/me/") for _ in range(3)]
        statuses[key] = [r.status_code for r in responses]
        bodies += [r.json() for r in responses if r.status_code == 429]
    assert sum(s.count(200) for s in statuses.values()) == 6  # org limit = 3 x 2
    types = {b["error"]["rate_limit_type"] for b in bodies}
    assert types == {"key", "organization"}
    org_body = next(b for b in bodies if b["error"]["rate_limit_type"] == "organization")
    assert org_body["error"]["rate_limit"] == 6


def test_no_rate_limit_header_when_off_and_on_401_when_on(org: Org) -> None:
    with CloseSimulator(org).client() as client:
        assert "RateLimit" not in client.get("/me/").headers
    clock = FakeClock()
    with limited(org, clock).client(api_key="nope") as client:
        response = client.get("/me/")
    assert response.status_code == 401 and HEADER.match(response.headers["RateLimit"])


def test_latency_uses_the_injected_sleep(org: Org) -> None:
    clock = FakeClock()
    simulator = CloseSimulator(org, latency_ms=250, sleep=clock.sleep)
    with simulator.client() as client:
        client.get("/me/")
        client.get("/user/")
    assert clock.sleeps == [0.25, 0.25]


def test_faults_are_seeded_and_counted(org: Org) -> None:
    def run() -> list[str]:
        simulator = CloseSimulator(org, fault_rate=0.5, fault_seed=3)
        outcomes = []
        with simulator.client() as client:
            for _ in range(60):
                try:
                    response = client.get("/me/")
                except httpx.RemoteProtocolError:
                    outcomes.append("drop")
                    continue
                if response.status_code == 200:
                    try:
                        response.json()
                        outcomes.append("ok")
                    except ValueError:
                        outcomes.append("truncate")
                else:
                    outcomes.append(str(response.status_code))
        stats = simulator.stats()
        assert stats["requests"] == 60
        assert stats["faults_injected"] == 60 - outcomes.count("ok")
        assert stats["faults_by_kind"] == {
            kind: outcomes.count(kind) for kind in set(outcomes) - {"ok"}
        }
        assert stats["dropped"] == outcomes.count("drop")
        assert sum(1 for r in simulator.request_log if r.status == 0) == outcomes.count("drop")
        return outcomes

    first = run()
    assert first == run()
    assert {"ok", "500", "502", "503", "drop", "truncate"} <= set(first)


def test_fault_bodies(org: Org) -> None:
    simulator = CloseSimulator(org, fault_rate=1.0, fault_kinds=("503",))
    with simulator.client() as client:
        response = client.get("/me/")
    assert response.status_code == 503 and response.json() == {"error": "Service Unavailable"}
    truncating = CloseSimulator(org, fault_rate=1.0, fault_kinds=("truncate",))
    with truncating.client() as client:
        response = client.get("/user/")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    with pytest.raises(ValueError):
        CloseSimulator(org, fault_rate=2.0)
    with pytest.raises(ValueError):
        CloseSimulator(org, fault_kinds=("teapot",))


def test_request_log_never_keeps_the_key(org: Org) -> None:
    simulator = CloseSimulator(api_keys={"secret-key-123": org})
    with simulator.client(api_key="secret-key-123") as client:
        client.post(
            "/report/activity/",
            json={
                "type": "overview",
                "metrics": ["calls.all.all.count"],
                "relative_range": "yesterday",
            },
            headers={"X-TZ-Offset": "-5"},
            params={"a": "b"},
        )
    [record] = simulator.request_log
    assert record.method == "POST" and record.path == "/api/v1/report/activity/"
    assert record.params == {"a": "b"}
    assert record.json["metrics"] == ["calls.all.all.count"]
    assert record.headers["x-tz-offset"] == "-5"
    assert "authorization" not in record.headers
    assert "secret-key-123" not in repr(record)
    assert record.status == 200 and record.org_id == org.id
    assert simulator.stats()["by_endpoint"] == {"report_activity": 1}
    simulator.reset_stats()
    assert simulator.request_log == [] and simulator.stats()["requests"] == 0


def test_multi_org_keys(org: Org) -> None:
    other = generate_org(8, "small", ANCHOR)
    simulator = CloseSimulator(api_keys={"a": org, "b": other})
    with simulator.client(api_key="a") as a, simulator.client(api_key="b") as b:
        assert a.get("/me/").json()["organizations"][0]["id"] == org.id
        assert b.get("/me/").json()["organizations"][0]["id"] == other.id
        assert a.get(f"/report/statuses/lead/{other.id}/").status_code == 404
        assert b.get(f"/report/statuses/lead/{other.id}/").status_code == 200
    assert simulator.stats()["by_org"] == {org.id: 2, other.id: 2}
    assert [o.id for o in simulator.orgs] == [org.id, other.id]


def test_positional_key_mapping(org: Org) -> None:
    simulator = CloseSimulator({"k1": org})
    with simulator.client(api_key="k1") as client:
        assert client.get("/me/").status_code == 200
    with pytest.raises(ValueError):
        CloseSimulator({"k1": org}, api_keys={"k2": org})
