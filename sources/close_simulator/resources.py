"""JSON renderings of the organization's configuration objects (users, statuses, ...).

Shapes follow the examples in Close's documentation (``reference/close_api.md`` §8).
"""

from __future__ import annotations

from typing import Any

from .org import Group, Org, Pipeline, SavedSearch, User, iso_utc, utc_datetime

JSON = dict[str, Any]

_TIMEZONES = {
    -8.0: "America/Los_Angeles",
    -7.0: "America/Denver",
    -6.0: "America/Chicago",
    -5.0: "America/New_York",
    -4.0: "America/Halifax",
    0.0: "Europe/London",
    1.0: "Europe/Berlin",
    5.5: "Asia/Kolkata",
}


def _naive(ts: int) -> str:
    """``2019-11-04T11:04:13.014979``: Close's pipeline timestamps carry no zone suffix."""
    return utc_datetime(ts).strftime("%Y-%m-%dT%H:%M:%S.%f")


def user_json(org: Org, user: User) -> JSON:
    """A ``/user/`` item."""
    return {
        "id": user.id,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "image": None,
        "date_created": iso_utc(user.date_created),
        "date_updated": iso_utc(user.deactivated_at or user.date_created),
        "organizations": [org.id],
        "last_used_timezone": _TIMEZONES.get(user.utc_offset_hours, "UTC"),
        "email_verified_at": iso_utc(user.date_created + 600),
    }


def membership_json(org: Org, user: User) -> JSON:
    """A membership row of ``/organization/{id}/`` and ``/me/``."""
    return {
        "id": user.membership_id,
        "organization_id": org.id,
        "user_id": user.id,
        "user_email": user.email,
        "user_first_name": user.first_name,
        "user_last_name": user.last_name,
        "user_full_name": user.full_name,
        "user_phone": None,
        "role_id": user.role_id,
        "permissions_granted": ["bulk_edit", "export"] if user.role_id == "role_admin" else [],
        "auto_record_calls": "disabled",
        "track_email_opens": True,
        "date_created": iso_utc(user.date_created),
    }


def lead_status_json(org: Org, index: int) -> JSON:
    """A ``/status/lead/`` item."""
    status = org.lead_statuses[index]
    return {"id": status.id, "label": status.label, "organization_id": org.id}


def opportunity_status_json(org: Org, index: int) -> JSON:
    """A ``/status/opportunity/`` item."""
    status = org.opportunity_statuses[index]
    return {
        "id": status.id,
        "label": status.label,
        "type": status.type,
        "pipeline_id": status.pipeline_id,
        "organization_id": org.id,
    }


def pipeline_json(org: Org, pipeline: Pipeline) -> JSON:
    """A ``/pipeline/`` item with its ordered statuses."""
    statuses = []
    for status_id in pipeline.status_ids:
        status = org.opportunity_statuses[org.opportunity_status_index(status_id)]
        statuses.append({"id": status.id, "label": status.label, "type": status.type})
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "organization_id": org.id,
        "created_by": pipeline.created_by,
        "updated_by": pipeline.created_by,
        "date_created": _naive(pipeline.date_created),
        "date_updated": _naive(pipeline.date_created),
        "statuses": statuses,
    }


def group_json(org: Org, group: Group, members: bool = False) -> JSON:
    """A ``/group/`` item (``/group/{id}/`` adds ``members``)."""
    item: JSON = {"id": group.id, "name": group.name, "organization_id": org.id}
    if members:
        item["members"] = [{"user_id": user_id} for user_id in group.member_ids]
    return item


def saved_search_json(org: Org, search: SavedSearch) -> JSON:
    """A ``/saved_search/`` item (a lead Smart View)."""
    return {
        "id": search.id,
        "name": search.name,
        "description": f"Leads whose {search.field} is {search.value}",
        "type": "lead",
        "organization_id": org.id,
        "user_id": search.user_id,
        "is_shared": search.is_shared,
        "is_user_dependent": False,
        "query": None,
        "s_query": {
            "type": "and",
            "queries": [
                {"type": "object_type", "object_type": "lead"},
                {
                    "type": "field_condition",
                    "field": {
                        "type": "regular_field",
                        "object_type": "lead",
                        "field_name": search.field,
                    },
                    "condition": {"type": "term", "values": [search.value]},
                },
            ],
        },
        "date_created": iso_utc(search.date_created),
        "date_updated": iso_utc(search.date_created),
        "created_by": search.user_id or org.users[0].id,
        "updated_by": search.user_id or org.users[0].id,
        "shared_with": [],
        "sharing_settings": {
            "whole_org": search.is_shared,
            "user_ids": [],
            "group_ids": [],
            "created_at": iso_utc(search.date_created),
            "created_by_id": search.user_id or org.users[0].id,
            "updated_at": iso_utc(search.date_created),
            "updated_by_id": search.user_id or org.users[0].id,
        },
        "used_recently": False,
    }


def organization_json(org: Org, *, memberships: bool) -> JSON:
    """``/organization/{id}/`` (with memberships) or an ``organizations`` item of ``/me/``."""
    item: JSON = {
        "id": org.id,
        "name": org.name,
        "currency": "USD",
        "currency_symbol": "$",
        "plan_type": "business",
        "created_by": None,
        "updated_by": None,
        "date_created": iso_utc(org.date_created),
        "date_updated": iso_utc(org.date_created),
        "lead_statuses": [
            {"id": s.id, "label": s.label} for s in org.lead_statuses if not s.is_deleted
        ],
        "pipelines": [pipeline_json(org, p) for p in org.pipelines],
    }
    if memberships:
        item["memberships"] = [membership_json(org, u) for u in org.users if u.is_active]
        item["inactive_memberships"] = [
            membership_json(org, u) for u in org.users if not u.is_active
        ]
    return item


def me_json(org: Org) -> JSON:
    """``/me/``: the API key's user (the org's first user, an admin)."""
    user = org.users[0]
    return {
        **user_json(org, user),
        "email_accounts": [
            {
                "_type": "google",
                "id": f"emailacct_{org.tag}0000",
                "identities": [{"email": user.email, "name": user.full_name}],
                "organization_id": org.id,
                "user_id": user.id,
            }
        ],
        "memberships": [
            {
                "id": user.membership_id,
                "organization_id": org.id,
                "user_id": user.id,
                "role_id": user.role_id,
                "permissions_granted": ["bulk_edit", "export"],
                "auto_record_calls": "disabled",
                "track_email_opens": True,
            }
        ],
        "organizations": [organization_json(org, memberships=False)],
        "phone_numbers": [
            {
                "id": f"phon_{org.tag}0000",
                "number": "+16502822249",
                "organization_id": org.id,
                "user_id": user.id,
            }
        ],
    }
