"""One Close organization as the source sees it: its client, its gate, lazily read metadata."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any, Dict, Iterable, List, Mapping, Tuple

from .client import Breaker, CloseClient, Stop
from .config import SourceConfig, check_explorer_fields
from .errors import CloseAPIError, CloseConfigError, CloseNotFoundError
from .ledger import FAILED, OK, SETUP_REPORT, RunLog
from .reshape import custom_field_rows
from .settings import (
    ACTIVITY_METRICS_PATH,
    ALL_SEGMENT,
    CUSTOM_REPORT_FIELDS_PATH,
    GROUPS_PATH,
    ME_PATH,
    ORGANIZATION_PATH,
    PIPELINES_PATH,
)
from .stats import RequestStats
from .workers import ConcurrencyGate


class OrgContext:
    """A Close org reached with one API key; metadata is fetched once, on first use.

    Several resources (running in worker threads) share one context, so the lazy reads are
    guarded by a lock.

    Attributes:
        client: The key's client (one throttle, one breaker).
        gate: Bounds how many calls of this key run at once (``workers.ConcurrencyGate``).
    """

    def __init__(self, client: CloseClient, gate: ConcurrencyGate | None = None) -> None:
        self.client = client
        self.gate = gate or ConcurrencyGate()
        self._lock = threading.RLock()
        self._groups: Dict[str, Tuple[str, ...]] = {}
        self.explorer_field_types: Dict[str, str] = {}
        """Explorer field name -> type, from ``GET /report/custom/fields/`` (read when
        Explorer queries are configured)."""

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        with self._lock:
            return self.client.get(path, params)

    @cached_property
    def me(self) -> Mapping[str, Any]:
        """``GET /me/``: the key's user and its organization."""
        response = self._get(ME_PATH)
        if not isinstance(response, Mapping):
            raise CloseAPIError(
                "GET /me/ did not return a JSON object", endpoint="GET /me/", status=200
            )
        return response

    @cached_property
    def org_id(self) -> str:
        """The organization id of the key (``organizations[0].id`` of ``/me/``)."""
        organizations = self.me.get("organizations") or []
        if organizations and organizations[0].get("id"):
            return str(organizations[0]["id"])
        for membership in self.me.get("memberships") or []:
            if membership.get("organization_id"):
                return str(membership["organization_id"])
        raise CloseAPIError(
            "GET /me/ names no organization for this API key", endpoint="GET /me/", status=200
        )

    @cached_property
    def organization(self) -> Mapping[str, Any]:
        """``GET /organization/{id}/`` (memberships tell active users)."""
        response = self._get(ORGANIZATION_PATH.format(org_id=self.org_id))
        return response if isinstance(response, Mapping) else {}

    @cached_property
    def metrics(self) -> List[Dict[str, Any]]:
        """The activity metric catalog, ``GET /report/activity/metrics/``."""
        response = self._get(ACTIVITY_METRICS_PATH)
        metrics = response.get("metrics") if isinstance(response, Mapping) else None
        if not isinstance(metrics, list):
            raise CloseAPIError(
                "GET /report/activity/metrics/ returned no `metrics` list",
                endpoint=f"GET {ACTIVITY_METRICS_PATH}",
                status=200,
            )
        return metrics

    @cached_property
    def metric_keys(self) -> List[str]:
        """Every metric key of the catalog, in catalog order."""
        return [str(m["key"]) for m in self.metrics]

    @cached_property
    def pipelines(self) -> List[Dict[str, Any]]:
        """Every pipeline with its ordered statuses."""
        with self._lock:
            return [p for page in self.client.paginate(PIPELINES_PATH) for p in page]

    @cached_property
    def custom_fields(self) -> Any:
        """``GET /report/custom/fields/``: the fields Explorer queries may use."""
        return self._get(CUSTOM_REPORT_FIELDS_PATH)

    def group_members(self, group_id: str) -> Tuple[str, ...]:
        """The user ids of a group (``GET /group/{id}/``), read once per run.

        Raises:
            CloseConfigError: When the group is unknown to this org or has no members (an
                empty ``users`` filter would silently mean every user).
        """
        with self._lock:
            if group_id not in self._groups:
                try:
                    detail = self.client.get(f"{GROUPS_PATH}{group_id}/")
                except CloseNotFoundError as exc:
                    raise CloseConfigError(
                        f"segment user_ids: group {group_id} does not exist in organization "
                        f"{self.org_id}."
                    ) from exc
                listed = detail.get("members") if isinstance(detail, Mapping) else None
                self._groups[group_id] = tuple(
                    str(m["user_id"])
                    for m in listed or []
                    if isinstance(m, Mapping) and m.get("user_id")
                )
            members = self._groups[group_id]
        if not members:
            raise CloseConfigError(
                f"segment user_ids: group {group_id} has no members in organization {self.org_id}."
            )
        return members

    def expand_users(self, ids: Iterable[str]) -> Tuple[str, ...]:
        """User ids for endpoints that take users only: each group id (``group_…``) becomes
        its members, in order, each user once."""
        users: List[str] = []
        for item in ids:
            users.extend(self.group_members(item) if item.startswith("group_") else (item,))
        return tuple(dict.fromkeys(users))


def connect(
    config: SourceConfig,
    base_url: str,
    run_log: RunLog,
    stop: Stop,
    client_kwargs: Mapping[str, Any],
) -> Tuple[OrgContext, ...]:
    """One ``OrgContext`` per key, each key checked with ``GET /me/`` before any report.

    With Explorer queries configured, each org's field list is read too and every query's
    ``x``, ``y`` and ``group_by`` checked against it, so a field Close does not list stops
    the run before any report request.

    Raises:
        CloseAuthError: Close refused a key (401).
        CloseConfigError: An Explorer query names a field Close does not list.
    """
    orgs = []
    for key in config.api_keys:
        gate = ConcurrencyGate()
        client = CloseClient(
            key,
            base_url,
            breaker=Breaker(stop),
            on_round_trip=gate.observe_round_trip,
            **client_kwargs,
        )
        org = OrgContext(client, gate)
        entry = run_log.entry(SETUP_REPORT, "", ALL_SEGMENT, ())
        with RequestStats.scope(entry.stats):
            try:
                entry.org_id = org.org_id
                if config.custom_reports:
                    _check_explorer_fields(org, config.custom_reports, run_log)
            except BaseException as exc:
                entry.finish(FAILED, exc)
                raise
        entry.finish(OK)
        orgs.append(org)
    return tuple(orgs)


def _check_explorer_fields(
    org: OrgContext, queries: Tuple[Dict[str, Any], ...], run_log: RunLog
) -> None:
    try:
        fields = org.custom_fields
    except CloseAPIError as exc:
        if exc.status == 401:
            raise
        run_log.warn(f"Explorer fields of organization {org.org_id} not checked: {exc}")
        return
    rows = custom_field_rows(fields, org.org_id)
    org.explorer_field_types = {str(row["name"]): str(row.get("type") or "") for row in rows}
    check_explorer_fields(queries, list(org.explorer_field_types), org.org_id)
