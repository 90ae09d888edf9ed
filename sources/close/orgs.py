"""One Close organization as the source sees it: its client and lazily read metadata."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any, Dict, List, Mapping

from .client import CloseClient
from .errors import CloseAPIError
from .settings import ACTIVITY_METRICS_PATH, ME_PATH, ORGANIZATION_PATH, PIPELINES_PATH


class OrgContext:
    """A Close org reached with one API key; metadata is fetched once, on first use.

    Several resources (running in worker threads) share one context, so the lazy reads are
    guarded by a lock.
    """

    def __init__(self, client: CloseClient) -> None:
        self.client = client
        self._lock = threading.RLock()

    @cached_property
    def me(self) -> Mapping[str, Any]:
        """``GET /me/``: the key's user and its organization."""
        with self._lock:
            response = self.client.get(ME_PATH)
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
        with self._lock:
            response = self.client.get(ORGANIZATION_PATH.format(org_id=self.org_id))
        return response if isinstance(response, Mapping) else {}

    @cached_property
    def metrics(self) -> List[Dict[str, Any]]:
        """The activity metric catalog, ``GET /report/activity/metrics/``."""
        with self._lock:
            response = self.client.get(ACTIVITY_METRICS_PATH)
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
