"""Errors raised by the Close client.

Every error names the endpoint (HTTP method and path, never the full URL) and the HTTP status,
and carries Close's own error body. None of them ever contains the API key: the client redacts
it from anything it copies out of a response before building an error.
"""

import json
from typing import Any

AUTH_HELP = (
    "Set a valid key in the SOURCES__CLOSE__API_KEY environment variable or as api_key under "
    "[sources.close] in .dlt/secrets.toml; keys are created in Close under "
    "Settings → Developer → API Keys"
)
REDACTED = "***"
_EXCERPT_CHARS = 300


class CloseConfigError(ValueError):
    """A setting is missing or invalid; the message names it and says how to fix it."""


class CloseAPIError(Exception):
    """A request to the Close API failed.

    Attributes:
        endpoint: HTTP method and path, e.g. ``GET /report/activity/metrics/``.
        status: HTTP status of the last response, or None when no response arrived.
        body: Close's error body, parsed JSON or a text excerpt.
        errors: Close's ``errors`` list (and a plain ``error`` message, if any).
        field_errors: Close's ``field-errors``, field name to message.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None,
        body: Any = None,
        errors: list[str] | None = None,
        field_errors: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.status = status
        self.body = body
        self.errors: list[str] = list(errors or [])
        self.field_errors: dict[str, str] = dict(field_errors or {})

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(endpoint={self.endpoint!r}, status={self.status!r}, "
            f"message={self.message!r})"
        )


class CloseValidationError(CloseAPIError):
    """Close rejected the request as invalid (HTTP 400); see ``errors`` and ``field_errors``."""


class CloseAuthError(CloseAPIError):
    """Close refused the API key (HTTP 401) or the operation for this key (HTTP 403)."""


class CloseForbiddenError(CloseAuthError):
    """Close refused this endpoint for the key (HTTP 403): a report not on the org's plan, or
    a user without permission. Unlike a refused key (401) it concerns one report only."""


class CloseNotFoundError(CloseAPIError):
    """The endpoint or object does not exist (HTTP 404)."""


class CloseUnavailableError(CloseAPIError):
    """Not sent: an earlier request of this key already exhausted its retries (Close down or
    unreachable), or the run was interrupted. Carries the original failure in ``cause``."""


class CloseRetryError(CloseAPIError):
    """Retries were exhausted on rate limiting, server errors, transport errors or bad JSON.

    Attributes:
        attempts: How many attempts were made.
        last_error: A short description of the last failure (status or exception).
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None,
        attempts: int,
        last_error: str,
        body: Any = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, status=status, body=body)
        self.attempts = attempts
        self.last_error = last_error


def redact(value: Any, secrets: tuple[str, ...]) -> Any:
    """Replace every occurrence of the secrets in a string or in a parsed JSON value.

    Args:
        value: A string, or a JSON value (dicts and lists are walked recursively).
        secrets: Strings to hide; empty strings are ignored.

    Returns:
        The same value with each secret replaced by ``***``.
    """
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value


def excerpt(text: str, limit: int = _EXCERPT_CHARS) -> str:
    """One line of at most ``limit`` characters, for quoting a body in a message."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def parse_error_body(body: Any) -> tuple[list[str], dict[str, str]]:
    """Close's ``errors`` and ``field-errors`` from an error body.

    A plain ``{"error": "..."}`` (401, 404, malformed JSON) or ``{"error": {"message": ...}}``
    (429) is returned as one entry of the errors list.

    Args:
        body: The parsed JSON body, or text when it was not JSON.

    Returns:
        The errors list and the field errors, both as strings.
    """
    errors: list[str] = []
    field_errors: dict[str, str] = {}
    if not isinstance(body, dict):
        return errors, field_errors
    raw_errors = body.get("errors")
    if isinstance(raw_errors, list):
        errors.extend(_as_text(e) for e in raw_errors if e not in (None, ""))
    elif raw_errors:
        errors.append(_as_text(raw_errors))
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        errors.append(_as_text(error["message"]))
    elif error:
        errors.append(_as_text(error))
    raw_fields = body.get("field-errors")
    if isinstance(raw_fields, dict):
        field_errors = {str(k): _as_text(v) for k, v in raw_fields.items()}
    return errors, field_errors


def _details(body: Any, errors: list[str], field_errors: dict[str, str]) -> str:
    parts = errors + [f"{field}: {message}" for field, message in field_errors.items()]
    if parts:
        return excerpt("; ".join(parts), 1000)
    if body in (None, "", {}):
        return "empty response body"
    return excerpt(_as_text(body))


def error_for_response(endpoint: str, status: int, body: Any) -> CloseAPIError:
    """The named error for a non-retryable error response.

    Args:
        endpoint: HTTP method and path.
        status: HTTP status (4xx other than 429, or an unexpected 3xx).
        body: The response body, parsed JSON or text, already redacted.

    Returns:
        ``CloseValidationError`` for 400, ``CloseAuthError`` for 401, ``CloseForbiddenError``
        for 403,
        ``CloseNotFoundError`` for 404, else ``CloseAPIError``.
    """
    errors, field_errors = parse_error_body(body)
    details = _details(body, errors, field_errors)
    kwargs: dict[str, Any] = {
        "endpoint": endpoint,
        "status": status,
        "body": body,
        "errors": errors,
        "field_errors": field_errors,
    }
    if status == 400:
        message = f"Close rejected {endpoint} as invalid (HTTP 400): {details}"
        return CloseValidationError(message, **kwargs)
    if status in (401, 403):
        hint = (
            ""
            if status == 401
            else " (the report may not be on your Close plan, or the key's user lacks "
            "permission for it)"
        )
        message = (
            f"Close refused the API key for {endpoint} (HTTP {status}: {details}){hint}. "
            f"{AUTH_HELP}."
        )
        return (CloseAuthError if status == 401 else CloseForbiddenError)(message, **kwargs)
    if status == 404:
        message = (
            f"Close has no {endpoint} (HTTP 404: {details}); check SOURCES__CLOSE__BASE_URL "
            "and that the id in the path belongs to this key's organization"
        )
        return CloseNotFoundError(message, **kwargs)
    message = f"Close answered {endpoint} with HTTP {status}: {details}"
    return CloseAPIError(message, **kwargs)


def retry_error(
    endpoint: str, status: int | None, attempts: int, last_error: str, body: Any = None
) -> CloseRetryError:
    """The error raised when the retry budget is spent.

    Args:
        endpoint: HTTP method and path.
        status: HTTP status of the last response, None if the last attempt got none.
        attempts: How many attempts were made.
        last_error: A short, already redacted description of the last failure.
        body: The last response body, if any.

    Returns:
        A ``CloseRetryError`` whose message says what to do.
    """
    shown = f"HTTP {status}" if status is not None else "no HTTP status"
    message = (
        f"Close API {endpoint} failed after {attempts} attempts ({shown}; last error: "
        f"{last_error}); Close may be down or rate limiting this key: try again later, or "
        "lower SOURCES__CLOSE__MAX_RPS"
    )
    return CloseRetryError(
        message,
        endpoint=endpoint,
        status=status,
        attempts=attempts,
        last_error=last_error,
        body=body,
    )
