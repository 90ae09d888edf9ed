"""Turning what went wrong into one line a user can act on, and an exit status."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from close_reports.source.errors import (
    CloseAPIError,
    CloseAuthError,
    CloseConfigError,
    CloseValidationError,
)
from close_reports.source.ledger import RunLog
from close_reports.source.reshape import UnexpectedResponseError
from close_reports.source.settings import ALL_SEGMENT

EXIT_USAGE = 2
"""Bad options or configuration: nothing was read or written."""
EXIT_FAILED = 1
"""The load or the dbt build failed; tables and state are as before the run."""
EXIT_PARTIAL = 3
"""Some reports were refused or failed and were skipped; every other report loaded."""


class UsageError(Exception):
    """A bad command-line option or setting, with a message that says how to fix it."""


class DbtBuildError(Exception):
    """dbt build (models or tests) failed."""


class PartialLoadError(Exception):
    """Some report units failed; the rest loaded (or nothing did, when ``loaded`` is false)."""

    def __init__(self, failures: List[str], loaded: bool) -> None:
        what = "the other reports loaded" if loaded else "nothing was loaded"
        super().__init__(
            f"{len(failures)} report(s) not loaded ({what}; their tables and state are "
            f"unchanged, rerun to retry them): " + "; ".join(failures)
        )
        self.failures = failures
        self.loaded = loaded


def failed_reports(run_log: RunLog) -> List[str]:
    """What failed, one item per cause and org: the reports (and segments) it stopped, then
    the cause (Close's message; the first failure when Close went down for every report)."""
    grouped: Dict[Tuple[str, str], List[str]] = {}
    for entry in run_log.failed:
        name = entry.report + ("" if entry.segment == ALL_SEGMENT else f" [{entry.segment}]")
        grouped.setdefault((entry.org_id, entry.cause or entry.error or "?"), []).append(name)
    return [
        f"{', '.join(names)} (org {org_id}): {cause}" for (org_id, cause), names in grouped.items()
    ]


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception behind it (dlt's wrapped ``exception``, causes, contexts)."""
    seen: set[int] = set()
    queue: List[BaseException] = [exc]
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = getattr(current, "exception", None)
        for following in (nested, current.__cause__, current.__context__):
            if isinstance(following, BaseException):
                queue.append(following)


def explain(exc: BaseException) -> Tuple[str, int]:
    """The message and exit status for a failed command."""
    chain = list(causes(exc))
    for cause in chain:
        if isinstance(cause, UsageError):
            return str(cause), EXIT_USAGE
    for cause in chain:
        message = config_error_message(cause)
        if message:
            return message, EXIT_USAGE
    for cause in chain:
        if isinstance(cause, PartialLoadError):
            return str(cause), EXIT_PARTIAL if cause.loaded else EXIT_FAILED
    for cause in chain:
        if isinstance(cause, (CloseAuthError, CloseValidationError)):
            return str(cause), EXIT_FAILED
    for cause in chain:
        if isinstance(cause, CloseAPIError):
            return str(cause), EXIT_FAILED
    for cause in chain:
        if isinstance(cause, UnexpectedResponseError):
            return f"Close sent a response the loader cannot read: {cause}", EXIT_FAILED
    for cause in chain:
        if isinstance(cause, CloseConfigError):
            return str(cause), EXIT_USAGE
    for cause in chain:
        if _is_duckdb_lock(cause):
            return _duckdb_lock_message(cause), EXIT_USAGE
    for cause in chain:
        if isinstance(cause, DbtBuildError):
            return str(cause), EXIT_FAILED
    innermost = chain[-1]
    return f"{type(innermost).__name__}: {innermost}", EXIT_FAILED


def _is_duckdb_lock(exc: BaseException) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


def _duckdb_lock_message(exc: BaseException) -> str:
    return (
        "The DuckDB file is locked by another process (a DuckDB CLI, a notebook, a BI tool or "
        "another pipeline run): close it, or load into another file with --duckdb-path. "
        f"({str(exc).splitlines()[0]})"
    )


# ---------------------------------------------------------------- configuration errors

CONFIG_DIR = ".dlt"
CONFIG_FILES = ("config.toml", "secrets.toml")


def config_files() -> List[Path]:
    """The TOML files dlt reads: the project's ``.dlt/`` and the global dlt directory."""
    from dlt.common.runtime import run_context

    context = run_context.active()
    folders = [Path(context.settings_dir).resolve(), Path(context.global_dir).resolve()]
    return [folder / name for folder in dict.fromkeys(folders) for name in CONFIG_FILES]


def check_config_files(paths: Optional[Sequence[Path]] = None) -> None:
    """Fails with the file, line and column when a dlt TOML file cannot be parsed."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    for path in paths if paths is not None else config_files():
        path = path.resolve()
        if not path.is_file():
            continue
        try:
            tomlkit.parse(path.read_text(encoding="utf-8"))
        except ParseError as exc:
            raise UsageError(
                f"{path}, line {exc.line}, column {exc.col}: not valid TOML "
                f"({_toml_reason(exc)}). Fix that line (https://toml.io)."
            ) from exc
        except UnicodeDecodeError as exc:
            raise UsageError(f"{path} is not a UTF-8 text file ({exc}).") from exc


def _toml_reason(exc: Exception) -> str:
    return re.sub(r"\s+at line \d+ col \d+$", "", str(exc))


def _env_names(field: str) -> List[str]:
    suffix = f"__{field.upper()}"
    return sorted(name for name in os.environ if name.upper().endswith(suffix))


def _toml_lines(field: str) -> List[str]:
    """``file:line`` of each assignment to ``field`` in the dlt TOML files."""
    found = []
    pattern = re.compile(rf"^\s*{re.escape(field)}\s*=")
    try:
        files = config_files()
    except Exception:
        files = []
    for path in files:
        if not path.is_file():
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        found += [f"{path}:{n}" for n, line in enumerate(lines, 1) if pattern.match(line)]
    return found


def _where(field: str) -> str:
    places = _env_names(field) or _toml_lines(field)
    return f" (set in {', '.join(places)})" if places else ""


def config_error_message(exc: BaseException) -> Optional[str]:
    """One line for dlt's configuration errors: a TOML file that cannot be read, a value of
    the wrong type or malformed JSON in a setting, a missing setting or credential."""
    from dlt.common.configuration.exceptions import (
        ConfigFieldMissingException,
        ConfigValueCannotBeCoercedException,
    )
    from dlt.common.configuration.providers.toml import TomlProviderReadException

    if isinstance(exc, TomlProviderReadException):
        try:
            check_config_files([Path(p) for p in exc.full_paths])
        except UsageError as usage:
            return str(usage)
        return f"dlt cannot read {exc.file_name}: {str(exc).splitlines()[-1]}"
    if isinstance(exc, ConfigValueCannotBeCoercedException):
        value = exc.field_value
        shown = value if len(str(value)) <= 60 else f"{str(value)[:57]}..."
        wanted = getattr(exc.hint, "__name__", str(exc.hint))
        kind = {
            "int": "a whole number",
            "float": "a number",
            "bool": "true or false",
            "list": 'a list (JSON: ["a", "b"])',
            "dict": "a table / JSON object",
        }
        reason = ""
        inner = exc.__cause__ or exc.__context__
        if inner is not None and wanted in ("list", "dict"):
            reason = f": {str(inner).splitlines()[0]}"
        return (
            f"Setting `{exc.field_name}`{_where(exc.field_name)} must be "
            f"{kind.get(wanted, wanted)}, got {shown!r}{reason}."
        )
    if isinstance(exc, ConfigFieldMissingException):
        return _missing_message(exc)
    return None


def _env_keys(traces: Any) -> List[str]:
    """The environment variables dlt looked up for the missing fields (nested configs too)."""
    keys: List[str] = []
    for field_traces in traces.values():
        for trace in field_traces:
            nested = getattr(trace, "traces", None)
            if isinstance(nested, dict):
                keys += _env_keys(nested)
            elif "Environment" in str(getattr(trace, "provider", "")):
                keys.append(str(trace.key))
    return keys


def _missing_message(exc: Any) -> str:
    keys = _env_keys(exc.traces)
    destination = next(
        (k.split("__")[1].lower() for k in keys if k.startswith("DESTINATION__")), ""
    )
    if destination or "Credentials" in str(exc.spec_name):
        example = {
            "postgres": "postgresql://user:password@localhost:5432/close",
            "motherduck": "md:close?motherduck_token=...",
            "snowflake": "snowflake://user:password@account/database?warehouse=...&role=...",
            "filesystem": "file:///path/to/bucket (bucket_url)",
        }.get(destination, "<connection string>")
        setting = "BUCKET_URL" if destination == "filesystem" else "CREDENTIALS"
        variable = f"DESTINATION__{destination.upper()}__{setting}" if destination else keys[0]
        return (
            f"No {setting.lower().replace('_', ' ')} for the {destination or 'destination'} "
            f"destination: set {variable}={example} (or `{setting.lower()}` under "
            f"[destination.{destination}] in .dlt/secrets.toml). "
            f"Missing: {', '.join(exc.fields)}."
        )
    shown = ", ".join(dict.fromkeys(keys[:3])) or ", ".join(exc.fields)
    return f"Missing settings: {shown} (env vars, or .dlt/config.toml / .dlt/secrets.toml)."


# ---------------------------------------------------------------- interrupts


def interrupted(exc: BaseException) -> Optional[int]:
    """The signal behind ``exc`` (SIGINT for Ctrl-C), or None when it was not an interrupt.
    dlt wraps a KeyboardInterrupt (or its own ``SignalReceivedException``) in its step errors."""
    from dlt.common.exceptions import SignalReceivedException

    for cause in causes(exc):
        if isinstance(cause, KeyboardInterrupt):
            return int(signal.SIGINT)
        if isinstance(cause, SignalReceivedException):
            return int(getattr(cause, "signal_code", signal.SIGINT))
    return None


def interrupt_message(exc: BaseException, stage: str) -> str:
    """What an interrupt left behind, in one line, from the step it stopped (``setup``,
    ``load`` for the dlt run, whose own step dlt names, or ``dbt``)."""
    from dlt.pipeline.exceptions import PipelineStepFailed

    step = next((c.step for c in causes(exc) if isinstance(c, PipelineStepFailed)), None)
    if stage == "dbt":
        return (
            "the load was committed; the dbt build was stopped, so some marts may be from the "
            "previous build: run `close-pipeline transform`."
        )
    if stage == "load" and step == "load":
        return (
            "stopped in the load step: tables whose load jobs had finished hold this run's "
            "rows (each table whole), the others and the state are as before; the next run "
            "finishes this load first."
        )
    return (
        f"stopped before anything was loaded{f' (in the {step} step)' if step else ''}: "
        "nothing of this run was committed; tables and state are as before it."
    )
