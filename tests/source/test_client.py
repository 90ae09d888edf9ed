"""The Close HTTP client: exact requests, retries and waits, errors, throttle, timezone header.

Offline: every request goes to an ``httpx.MockTransport``; sleeps and clocks are fakes, so no
test waits for real.
"""

import base64
import email.utils
import json
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dlt.common import logger as dlt_logger

from close_reports.source.client import USER_AGENT, CloseClient, RequestStats, format_tz_offset
from close_reports.source.errors import (
    CloseAPIError,
    CloseAuthError,
    CloseNotFoundError,
    CloseRetryError,
    CloseValidationError,
)
from close_reports.source.throttle import Throttle, parse_rate_limit
from tests.utils import FakeClock

API_KEY = "api_5ecretKeyValue.0123456789abcdef"
KEY_TOKEN = base64.b64encode(f"{API_KEY}:".encode()).decode()
BASE_URL = "https://api.close.test/api/v1"


class CeilingRandom:
    """Stands in for ``random.Random``: full jitter always picks the ceiling."""

    def uniform(self, low: float, high: float) -> float:
        return high


Responder = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class Script:
    """A MockTransport handler answering with a scripted sequence; records the requests."""

    def __init__(self, responses: Iterable[Responder]) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)


def make_client(
    responses: Iterable[Responder], fake: FakeClock | None = None, **kwargs: Any
) -> tuple[CloseClient, Script, FakeClock]:
    fake = fake or FakeClock(start=0.0)
    script = Script(responses)
    options: dict[str, Any] = {
        "sleep": fake.sleep,
        "throttle": Throttle(clock=fake.clock, sleep=fake.throttle_sleep),
        "rng": CeilingRandom(),
    }
    options.update(kwargs)
    client = CloseClient(API_KEY, BASE_URL, transport=httpx.MockTransport(script), **options)
    return client, script, fake


def ok(body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.Response(200, json={"ok": True} if body is None else body, **kwargs)


def texts_of(error: BaseException) -> list[str]:
    """str and repr of an exception and of everything chained to it."""
    texts: list[str] = []
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return texts


def assert_no_key(error: BaseException) -> None:
    for text in texts_of(error):
        assert API_KEY not in text
        assert KEY_TOKEN not in text


# ---------------------------------------------------------------- the exact request


def test_get_sends_basic_auth_accept_user_agent_and_trailing_slash() -> None:
    client, script, _ = make_client([ok({"id": "user_1"})])
    assert client.get("/me", {"a": "1"}) == {"id": "user_1"}
    (request,) = script.requests
    assert request.method == "GET"
    assert str(request.url) == f"{BASE_URL}/me/?a=1"
    assert request.headers["authorization"] == f"Basic {KEY_TOKEN}"
    assert base64.b64decode(KEY_TOKEN).decode() == f"{API_KEY}:"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith("close-reports/")
    assert "x-tz-offset" not in request.headers


@pytest.mark.parametrize(
    "path, url",
    [
        ("/report/activity/metrics/", f"{BASE_URL}/report/activity/metrics/"),
        ("report/activity/metrics", f"{BASE_URL}/report/activity/metrics/"),
        ("/user?_limit=1", f"{BASE_URL}/user/?_limit=1"),
    ],
)
def test_trailing_slash_is_added_before_the_query(path: str, url: str) -> None:
    client, script, _ = make_client([ok()])
    client.get(path)
    assert str(script.requests[0].url) == url


def test_base_url_with_trailing_slash_is_not_doubled() -> None:
    script = Script([ok()])
    client = CloseClient(API_KEY, BASE_URL + "/", transport=httpx.MockTransport(script))
    client.get("/me/")
    assert str(script.requests[0].url) == f"{BASE_URL}/me/"


def test_post_sends_json_body_and_tz_offset_header() -> None:
    client, script, _ = make_client([ok({"aggregations": {}})])
    body = {"type": "overview", "metrics": ["calls.all.all.count"]}
    assert client.post("/report/activity/", body, tz_offset=-4.0) == {"aggregations": {}}
    (request,) = script.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE_URL}/report/activity/"
    assert json.loads(request.content) == body
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-tz-offset"] == "-4"
    assert request.headers["authorization"] == f"Basic {KEY_TOKEN}"


@pytest.mark.parametrize("offset, header", [(5.5, "5.5"), (0.0, "0"), (-2.5, "-2.5")])
def test_get_sends_tz_offset_only_when_given(offset: float, header: str) -> None:
    client, script, _ = make_client([ok()])
    client.get("/report/sent_emails/orga_1/", {"date_start": "2024-01-01"}, tz_offset=offset)
    assert script.requests[0].headers["x-tz-offset"] == header


def test_paginate_sends_skip_and_limit_until_has_more_is_false() -> None:
    pages = [
        ok({"data": [{"id": 1}, {"id": 2}], "has_more": True}),
        ok({"data": [{"id": 3}, {"id": 4}], "has_more": True}),
        ok({"data": [{"id": 5}], "has_more": False}),
    ]
    client, script, _ = make_client(pages)
    result = list(client.paginate("/user", {"q": "x"}, page_size=2))
    assert result == [[{"id": 1}, {"id": 2}], [{"id": 3}, {"id": 4}], [{"id": 5}]]
    params = [dict(r.url.params) for r in script.requests]
    assert params == [
        {"q": "x", "_skip": "0", "_limit": "2"},
        {"q": "x", "_skip": "2", "_limit": "2"},
        {"q": "x", "_skip": "4", "_limit": "2"},
    ]
    assert all(r.url.path == "/api/v1/user/" for r in script.requests)


def test_paginate_default_page_size_and_missing_has_more_stops() -> None:
    client, script, _ = make_client([ok({"data": [{"id": 1}]}), ok({"data": [{"id": 2}]})])
    assert list(client.paginate("/status/lead/")) == [[{"id": 1}]]
    assert len(script.requests) == 1
    assert dict(script.requests[0].url.params) == {"_skip": "0", "_limit": "100"}


def test_paginate_stops_on_an_empty_page() -> None:
    pages = [ok({"data": [{"id": 1}], "has_more": True}), ok({"data": [], "has_more": True})]
    client, script, _ = make_client(pages)
    assert list(client.paginate("/group/")) == [[{"id": 1}]]
    assert len(script.requests) == 2


def test_context_manager_closes_the_client() -> None:
    client, _, _ = make_client([ok()])
    with client as entered:
        assert entered is client
    with pytest.raises(RuntimeError):
        client.get("/me/")


# ---------------------------------------------------------------- retries and waits


def too_many(headers: dict[str, str] | None = None, body: Any = None) -> httpx.Response:
    error = body if body is not None else {"error": {"message": "API call count exceeded"}}
    return httpx.Response(429, json=error, headers=headers or {})


@pytest.mark.parametrize(
    "response, wait",
    [
        (too_many({"RateLimit": "limit=20, remaining=0, reset=1.5"}), 1.5),
        (too_many({"Retry-After": "2"}), 2.0),
        (too_many(body={"error": {"message": "slow down", "rate_reset": 3.25}}), 3.25),
    ],
    ids=["ratelimit-reset", "retry-after", "body-rate-reset"],
)
def test_429_waits_what_close_asks_then_succeeds(response: httpx.Response, wait: float) -> None:
    client, script, fake = make_client([response, ok({"done": 1})])
    assert client.get("/report/activity/metrics/") == {"done": 1}
    assert len(script.requests) == 2
    assert fake.sleeps == [wait]
    assert client.stats.as_dict() == {
        "requests": 2,
        "retries": 1,
        "rate_limited": 1,
        "server_errors": 0,
        "transport_errors": 0,
        "failed": 0,
    }


def test_429_prefers_ratelimit_reset_over_retry_after_over_body() -> None:
    response = too_many(
        {"RateLimit": "limit=20, remaining=0, reset=0.75", "Retry-After": "1"},
        {"error": {"rate_reset": 9}},
    )
    client, _, fake = make_client([response, ok()])
    client.get("/me/")
    assert fake.sleeps == [0.75]

    response = too_many({"Retry-After": "4"}, {"error": {"rate_reset": 9}})
    client, _, fake = make_client([response, ok()])
    client.get("/me/")
    assert fake.sleeps == [4.0]


def test_429_legacy_rate_limit_reset_header() -> None:
    response = too_many({"X-Rate-Limit-Limit": "40", "X-Rate-Limit-Reset": "2.5"})
    client, _, fake = make_client([response, ok()])
    client.get("/me/")
    assert fake.sleeps == [2.5]


def test_429_retry_after_as_http_date() -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    client, _, fake = make_client([too_many({"Retry-After": when}), ok()])
    client.get("/me/")
    assert len(fake.sleeps) == 1
    assert 27 <= fake.sleeps[0] <= 30


def test_429_without_any_signal_uses_backoff() -> None:
    client, _, fake = make_client([too_many(body={}), ok()], backoff_base=0.5)
    client.get("/me/")
    assert fake.sleeps == [0.5]


def test_429_pauses_the_shared_throttle_for_the_wait() -> None:
    class SpyThrottle(Throttle):
        def __init__(self, fake: FakeClock) -> None:
            super().__init__(clock=fake.clock, sleep=fake.throttle_sleep)
            self.paused: list[float] = []

        def pause(self, seconds: float) -> None:
            self.paused.append(seconds)
            super().pause(seconds)

    fake = FakeClock(start=0.0)
    throttle = SpyThrottle(fake)
    client, _, _ = make_client([too_many({"Retry-After": "3"}), ok()], fake, throttle=throttle)
    client.get("/me/")
    assert throttle.paused == [3.0]
    assert fake.now == 3.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_then_success_uses_backoff(status: int) -> None:
    client, script, fake = make_client([httpx.Response(status, text="oops"), ok()])
    assert client.get("/me/") == {"ok": True}
    assert len(script.requests) == 2
    assert fake.sleeps == [1.0]
    stats = client.stats.as_dict()
    assert stats["server_errors"] == 1 and stats["retries"] == 1 and stats["rate_limited"] == 0


def test_server_error_honours_retry_after() -> None:
    response = httpx.Response(503, headers={"Retry-After": "7"}, text="maintenance")
    client, _, fake = make_client([response, ok()])
    client.get("/me/")
    assert fake.sleeps == [7.0]


def test_dropped_connection_then_success() -> None:
    dropped = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    client, script, fake = make_client([dropped, ok({"id": 1})])
    assert client.get("/me/") == {"id": 1}
    assert len(script.requests) == 2
    assert fake.sleeps == [1.0]
    stats = client.stats.as_dict()
    assert stats["transport_errors"] == 1 and stats["requests"] == 2 and stats["failed"] == 0


def test_timeout_then_success() -> None:
    client, _, _ = make_client([httpx.ReadTimeout("timed out"), ok({"id": 1})])
    assert client.get("/me/") == {"id": 1}
    assert client.stats.transport_errors == 1


def test_truncated_json_then_success() -> None:
    truncated = httpx.Response(200, content=b'{"data": [{"id": "lead_1", "na')
    client, script, fake = make_client([truncated, ok({"data": []})])
    assert client.get("/user/") == {"data": []}
    assert len(script.requests) == 2
    assert fake.sleeps == [1.0]
    assert client.stats.retries == 1


def test_backoff_grows_and_is_capped() -> None:
    client, script, fake = make_client(
        [httpx.Response(500)], max_attempts=7, backoff_base=1.0, backoff_max=5.0
    )
    with pytest.raises(CloseRetryError):
        client.get("/me/")
    assert len(script.requests) == 7
    assert fake.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_backoff_has_full_jitter_below_the_ceiling() -> None:
    import random

    client, _, fake = make_client(
        [httpx.Response(502)], max_attempts=6, backoff_max=8.0, rng=random.Random(7)
    )
    with pytest.raises(CloseRetryError):
        client.get("/me/")
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0]
    assert len(fake.sleeps) == 5
    assert all(0 <= wait <= cap for wait, cap in zip(fake.sleeps, ceilings, strict=True))
    assert fake.sleeps != ceilings


def test_retry_budget_exhausted_raises_close_retry_error() -> None:
    client, script, _ = make_client([httpx.Response(503, text="down")], max_attempts=4)
    with pytest.raises(CloseRetryError) as info:
        client.get("/report/activity/metrics")
    error = info.value
    assert len(script.requests) == 4
    assert error.attempts == 4
    assert error.status == 503
    assert error.endpoint == "GET /report/activity/metrics/"
    message = str(error)
    assert "4 attempts" in message and "HTTP 503" in message
    assert "GET /report/activity/metrics/" in message
    assert "down or rate limiting" in message
    assert "\n" not in message
    assert client.stats.as_dict() == {
        "requests": 4,
        "retries": 3,
        "rate_limited": 0,
        "server_errors": 4,
        "transport_errors": 0,
        "failed": 1,
    }


def test_retry_budget_on_429_names_the_status() -> None:
    client, _, _ = make_client([too_many({"Retry-After": "1"})], max_attempts=3)
    with pytest.raises(CloseRetryError, match="HTTP 429") as info:
        client.get("/me/")
    assert info.value.status == 429
    assert client.stats.rate_limited == 3


def test_retry_budget_on_transport_errors_has_no_status() -> None:
    client, _, _ = make_client([httpx.ConnectError("Connection refused")], max_attempts=3)
    with pytest.raises(CloseRetryError) as info:
        client.get("/me/")
    error = info.value
    assert error.status is None
    assert "no HTTP status" in str(error) and "ConnectError: Connection refused" in str(error)
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert client.stats.transport_errors == 3 and client.stats.failed == 1


def test_retries_are_logged_with_endpoint_status_and_wait(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(dlt_logger, "LOGGER", logging.getLogger("close-client-test"))
    client, _, _ = make_client([too_many({"Retry-After": "2"}), ok()])
    with caplog.at_level(logging.WARNING, logger="close-client-test"):
        client.get("/me")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "GET /me/" in message and "429" in message and "2.00 s" in message
    assert API_KEY not in message and KEY_TOKEN not in message


# ---------------------------------------------------------------- errors that are not retried


def test_400_is_not_retried_and_lists_field_errors() -> None:
    body = {
        "errors": ["Invalid report request."],
        "field-errors": {
            "metrics": "This field is required.",
            "datetime_range": "Provide either datetime_range or relative_range.",
        },
    }
    client, script, fake = make_client([httpx.Response(400, json=body)])
    with pytest.raises(CloseValidationError) as info:
        client.post("/report/activity", {"type": "overview"})
    error = info.value
    assert len(script.requests) == 1 and fake.sleeps == []
    assert error.status == 400
    assert error.endpoint == "POST /report/activity/"
    assert error.errors == ["Invalid report request."]
    assert error.field_errors == body["field-errors"]
    assert error.body == body
    message = str(error)
    assert "POST /report/activity/" in message and "400" in message
    assert "Invalid report request." in message
    assert "metrics: This field is required." in message
    assert "datetime_range: Provide either datetime_range or relative_range." in message
    assert client.stats.failed == 1 and client.stats.retries == 0


def test_400_with_field_errors_only() -> None:
    body = {"errors": [], "field-errors": {"_limit": "Input should be less than or equal to 200"}}
    client, _, _ = make_client([httpx.Response(400, json=body)])
    with pytest.raises(CloseValidationError, match="_limit: Input should be less than"):
        client.get("/user/", {"_limit": 500})


@pytest.mark.parametrize("status", [401, 403])
def test_auth_error_says_the_key_was_refused_and_how_to_set_it(status: int) -> None:
    client, script, _ = make_client([httpx.Response(status, json={"error": "Unauthorized"})])
    with pytest.raises(CloseAuthError) as info:
        client.get("/me/")
    error = info.value
    assert len(script.requests) == 1
    assert error.status == status
    message = str(error)
    assert "refused the API key" in message
    assert "GET /me/" in message and f"HTTP {status}" in message
    assert "SOURCES__CLOSE__API_KEY" in message
    assert "[sources.close]" in message and ".dlt/secrets.toml" in message
    assert "Settings → Developer → API Keys" in message
    assert "\n" not in message


def test_404_raises_not_found() -> None:
    client, script, _ = make_client([httpx.Response(404, json={"error": "Not found"})])
    with pytest.raises(CloseNotFoundError) as info:
        client.get("/report/statuses/lead/orga_other/")
    assert len(script.requests) == 1
    assert "GET /report/statuses/lead/orga_other/" in str(info.value)
    assert "HTTP 404" in str(info.value)


@pytest.mark.parametrize("status", [402, 405, 415, 501])
def test_other_error_statuses_raise_the_base_error_without_retry(status: int) -> None:
    client, script, _ = make_client([httpx.Response(status, text="<html>nope</html>")])
    with pytest.raises(CloseAPIError) as info:
        client.get("/me/")
    error = info.value
    assert type(error) is CloseAPIError
    assert len(script.requests) == 1
    assert error.status == status and f"HTTP {status}" in str(error)
    assert error.body == "<html>nope</html>"


# ---------------------------------------------------------------- the key never leaks


def echo_key_json(status: int) -> Callable[[httpx.Request], httpx.Response]:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status,
            json={
                "error": f"bad key {API_KEY}",
                "errors": [f"auth {request.headers['authorization']}"],
                "field-errors": {"api_key": f"{API_KEY} is not valid"},
            },
        )

    return respond


@pytest.mark.parametrize(
    "responses",
    [
        [echo_key_json(400)],
        [echo_key_json(401)],
        [echo_key_json(403)],
        [echo_key_json(404)],
        [echo_key_json(422)],
        [echo_key_json(503)],
        [echo_key_json(429)],
        [httpx.Response(200, content=f'{{"key": "{API_KEY}", "trunc'.encode())],
        [httpx.Response(500, text=f"Traceback: key={API_KEY} auth=Basic {KEY_TOKEN}")],
        [httpx.ConnectError(f"could not connect for {API_KEY}")],
        [httpx.RemoteProtocolError("Server disconnected without sending a response.")],
    ],
    ids=[
        "400",
        "401",
        "403",
        "404",
        "422",
        "503",
        "429",
        "truncated-json",
        "500-text",
        "connect-error-with-key",
        "dropped",
    ],
)
def test_api_key_never_appears_in_errors(responses: list[Responder]) -> None:
    client, _, _ = make_client(responses, max_attempts=2)
    with pytest.raises(CloseAPIError) as info:
        client.get("/me/")
    error = info.value
    assert_no_key(error)
    assert API_KEY not in json.dumps(error.body, default=str)
    assert API_KEY not in repr(client)
    assert error.endpoint in str(error)


def test_missing_api_key_says_how_to_set_it() -> None:
    with pytest.raises(ValueError, match="SOURCES__CLOSE__API_KEY"):
        CloseClient("")


# ---------------------------------------------------------------- stats


def test_request_stats_are_shared_by_several_clients() -> None:
    stats = RequestStats()
    first, _, _ = make_client([too_many({"Retry-After": "1"}), ok()], stats=stats)
    second, _, _ = make_client([httpx.Response(404, json={"error": "no"})], stats=stats)
    first.get("/me/")
    with pytest.raises(CloseNotFoundError):
        second.get("/me/")
    assert first.stats is second.stats is stats
    assert stats.as_dict() == {
        "requests": 3,
        "retries": 1,
        "rate_limited": 1,
        "server_errors": 0,
        "transport_errors": 0,
        "failed": 1,
    }


def test_request_stats_are_thread_safe() -> None:
    stats = RequestStats()

    def bump() -> None:
        for _ in range(1000):
            stats.increment("requests")

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stats.requests == 8000
    with pytest.raises(ValueError):
        stats.increment("nonsense")


# ---------------------------------------------------------------- throttle


def starts(throttle: Throttle, fake: FakeClock, count: int, answer: bool = False) -> list[float]:
    """Start ``count`` requests in a row; with ``answer`` each is answered (no headers) at once."""
    times = []
    for _ in range(count):
        throttle.acquire()
        times.append(fake.now)
        if answer:
            throttle.observe(None)
    return times


def test_throttle_max_rps_spaces_request_starts() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(max_rps=4, clock=fake.clock, sleep=fake.sleep)
    assert starts(throttle, fake, 5, answer=True) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_throttle_max_rps_does_not_delay_a_request_after_idle_time() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(max_rps=2, clock=fake.clock, sleep=fake.sleep)
    throttle.acquire()
    throttle.observe(None)
    fake.now = 10.0
    throttle.acquire()
    assert fake.sleeps == []


def test_throttle_is_free_while_budget_is_plentiful() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(reset_cushion=0, clock=fake.clock, sleep=fake.sleep)
    throttle.acquire()
    throttle.observe({"RateLimit": "limit=100, remaining=90, reset=10"})
    assert starts(throttle, fake, 20) == [0.0] * 20


def test_throttle_slows_down_as_remaining_falls() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(reset_cushion=0, clock=fake.clock, sleep=fake.sleep)
    gaps = []
    for remaining in (50, 20, 10, 5, 2):
        throttle.acquire()
        before = fake.now
        throttle.observe({"RateLimit": f"limit=50, remaining={remaining}, reset=10"})
        throttle.acquire()
        gaps.append(fake.now - before)
        throttle.observe(None)
    assert gaps[0] == 0.0
    assert gaps == sorted(gaps)
    assert gaps[-1] > gaps[-2] > gaps[1]
    # remaining=2 with 10 s to reset: the next request is spaced to 10 / (2 + 1) s.
    assert gaps[-1] == pytest.approx(10 / 3)


def test_throttle_spreads_the_last_budget_until_reset() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(reset_cushion=0, clock=fake.clock, sleep=fake.sleep)
    throttle.acquire()
    throttle.observe({"RateLimit": "limit=25, remaining=5, reset=6"})
    times = starts(throttle, fake, 6)
    assert times[:5] == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])
    # The budget is spent: the sixth waits for the reset.
    assert times[5] == pytest.approx(6.0)


def test_throttle_does_not_let_a_burst_overspend_the_budget() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(
        min_margin=0, safety_margin=0.0, reset_cushion=0, clock=fake.clock, sleep=fake.sleep
    )
    throttle.acquire()
    throttle.observe({"RateLimit": "limit=100, remaining=3, reset=10"})
    # Four workers start without any of them hearing back: three fit, the fourth waits.
    assert starts(throttle, fake, 4) == [0.0, 0.0, 0.0, 10.0]


def test_throttle_counts_requests_in_flight_against_remaining() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(
        min_margin=0, safety_margin=0.0, reset_cushion=0, clock=fake.clock, sleep=fake.sleep
    )
    throttle.acquire()
    throttle.observe(None)
    for _ in range(3):
        throttle.acquire()
    # The first answer says 3 remain, but two more requests are already on their way.
    throttle.observe({"RateLimit": "limit=100, remaining=3, reset=4"})
    assert throttle.budget == 1
    assert starts(throttle, fake, 2) == [0.0, 4.0]


def test_throttle_holds_at_zero_until_reset_then_resumes() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(reset_cushion=0, clock=fake.clock, sleep=fake.sleep)
    throttle.acquire()
    throttle.observe({"RateLimit": "limit=10, remaining=0, reset=2.5"})
    throttle.acquire()
    assert fake.now == pytest.approx(2.5)
    # After the reset the budget is back at the limit.
    assert throttle.budget == 9


def test_throttle_reads_legacy_headers() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(reset_cushion=0, clock=fake.clock, sleep=fake.sleep)
    throttle.acquire()
    throttle.observe(
        {"X-Rate-Limit-Limit": "10", "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "3"}
    )
    throttle.acquire()
    assert fake.now == pytest.approx(3.0)


def test_throttle_sends_one_probe_until_the_first_answer() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(clock=fake.clock, sleep=fake.sleep)
    throttle.acquire()  # the probe
    answered_at: list[float] = []

    def answer_probe() -> None:
        fake.sleep(0.3)
        answered_at.append(fake.clock())
        throttle.observe({"RateLimit": "limit=10, remaining=9, reset=1"})

    responder = threading.Thread(target=answer_probe)
    responder.start()
    throttle.acquire()  # waits for the probe's answer
    responder.join(timeout=5)
    assert answered_at and fake.now >= answered_at[0]
    assert throttle.budget == 8


def test_throttle_without_rate_limit_headers_is_free() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(clock=fake.clock, sleep=fake.sleep)
    throttle.acquire()
    throttle.observe({"content-type": "application/json"})
    assert starts(throttle, fake, 10) == [0.0] * 10
    assert throttle.budget is None


def test_throttle_reset_has_a_cushion() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(reset_cushion=0.05, clock=fake.clock, sleep=fake.sleep)
    throttle.acquire()
    throttle.observe({"RateLimit": "limit=10, remaining=0, reset=2"})
    throttle.acquire()
    assert fake.now == pytest.approx(2.05)


def test_throttle_ignores_a_stale_higher_remaining_in_the_same_window() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(
        min_margin=0, safety_margin=0, reset_cushion=0, clock=fake.clock, sleep=fake.sleep
    )
    throttle.observe(None, throttle.acquire())
    first = throttle.acquire()
    second = throttle.acquire()
    # The later-served answer arrives first, then the earlier one with more remaining.
    throttle.observe({"RateLimit": "limit=10, remaining=1, reset=5"}, second)
    throttle.observe({"RateLimit": "limit=10, remaining=2, reset=5.1"}, first)
    assert throttle.budget == 0
    # An answer from the next window (its reset much later) is taken as is.
    throttle.observe({"RateLimit": "limit=10, remaining=9, reset=6"})
    assert throttle.budget == 9


def test_throttle_credits_a_refill_shown_by_a_fresh_answer() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(
        min_margin=0, safety_margin=0, reset_cushion=0, clock=fake.clock, sleep=fake.sleep
    )
    throttle.observe({"RateLimit": "limit=10, remaining=2, reset=0.8"}, throttle.acquire())
    stale = throttle.acquire()
    fresh = throttle.acquire()
    assert throttle.budget == 0
    # ``fresh`` started after the answer that set the budget: a token bucket refilled.
    throttle.observe({"RateLimit": "limit=10, remaining=4, reset=0.6"}, fresh)
    assert throttle.budget == 3  # 4 minus ``stale`` still in flight
    # Without a ticket the answer might be stale: it can lower the budget, never raise it.
    throttle.observe({"RateLimit": "limit=10, remaining=8, reset=0.5"}, stale)
    assert throttle.budget == 3


def test_throttle_pause_blocks_other_threads() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(reset_cushion=0, clock=fake.clock, sleep=fake.sleep)
    throttle.pause(5.0)
    started: list[float] = []

    def worker() -> None:
        throttle.acquire()
        started.append(fake.clock())
        throttle.observe(None)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(started) == 3
    assert all(when >= 5.0 for when in started)


def test_throttle_after_a_429_probes_with_one_request_after_reset() -> None:
    fake = FakeClock(start=0.0)
    throttle = Throttle(reset_cushion=0, clock=fake.clock, sleep=fake.sleep)
    throttle.acquire()
    throttle.observe({"RateLimit": "limit=10, remaining=0, reset=1"})
    throttle.pause(1.0)
    throttle.acquire()  # the probe, at the reset
    assert fake.now == pytest.approx(1.0)
    assert throttle.budget is None

    release_at: list[float] = []

    def answer_probe() -> None:
        fake.sleep(0.2)
        throttle.observe({"RateLimit": "limit=10, remaining=9, reset=1"})
        release_at.append(fake.clock())

    responder = threading.Thread(target=answer_probe)
    responder.start()
    throttle.acquire()  # waits for the probe's answer
    responder.join(timeout=5)
    assert release_at and fake.now >= release_at[0]


def test_throttle_with_client_threads_never_overspends() -> None:
    """Eight threads share one client against a fixed window of 10 requests per second."""
    fake = FakeClock(start=0.0)
    lock = threading.Lock()
    window = {"start": 0.0, "used": 0}
    over_limit: list[float] = []

    def server(request: httpx.Request) -> httpx.Response:
        with lock:
            now = fake.now
            if now >= window["start"] + 1.0:
                window["start"] = now - (now - window["start"]) % 1.0
                window["used"] = 0
            window["used"] += 1
            remaining = 10 - window["used"]
            reset = window["start"] + 1.0 - now
            if remaining < 0:
                over_limit.append(now)
                return httpx.Response(429, headers={"Retry-After": "1"})
            header = f"limit=10, remaining={remaining}, reset={reset:.3f}"
        return httpx.Response(200, json={}, headers={"RateLimit": header})

    client, _, _ = make_client([server], fake)
    assert client.throttle._reset_cushion > 0

    def worker() -> None:
        for _ in range(5):
            client.get("/me/")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert client.stats.requests == 40
    assert over_limit == []


def test_throttle_rejects_a_non_positive_max_rps() -> None:
    with pytest.raises(ValueError):
        Throttle(max_rps=0)


def test_client_refuses_both_throttle_and_max_rps() -> None:
    with pytest.raises(ValueError):
        CloseClient(API_KEY, throttle=Throttle(), max_rps=5)


# ---------------------------------------------------------------- rate-limit headers


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"RateLimit": "limit=100, remaining=50, reset=5"}, (100, 50, 5)),
        ({"ratelimit": "limit=20, remaining=0, reset=0.25"}, (20, 0, 0.25)),
        ({"RateLimit": "reset=1.5,remaining=3"}, (None, 3, 1.5)),
        (
            {"x-rate-limit-limit": "40", "x-rate-limit-remaining": "7", "x-rate-limit-reset": "3"},
            (40, 7, 3),
        ),
        ({"RateLimit-Remaining": "4", "RateLimit-Reset": "2"}, (None, 4, 2)),
    ],
)
def test_parse_rate_limit(headers: dict[str, str], expected: tuple[Any, ...]) -> None:
    assert tuple(parse_rate_limit(headers) or ()) == expected


def test_parse_rate_limit_without_headers() -> None:
    assert parse_rate_limit({"content-type": "application/json"}) is None


# ---------------------------------------------------------------- timezone header


@pytest.mark.parametrize(
    "hours, text",
    [
        (-5.0, "-5"),
        (5.5, "5.5"),
        (0.0, "0"),
        (-0.0, "0"),
        (-2.5, "-2.5"),
        (5.75, "5.75"),
        (14, "14"),
    ],
)
def test_format_tz_offset(hours: float, text: str) -> None:
    assert format_tz_offset(hours) == text
