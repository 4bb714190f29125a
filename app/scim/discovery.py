"""What /ServiceProviderConfig, /ResourceTypes and /Schemas say: only what is built."""

from __future__ import annotations

from typing import Any

from scim2_models import Group, User

MAX_RESULTS = 1000
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"

# The attributes stored, and their sub-attributes; the rest of RFC 7643 is not kept.
_USER_ATTRIBUTES = {
    "userName": None,
    "name": {"givenName", "familyName"},
    "displayName": None,
    "active": None,
    "emails": {"value", "type", "primary"},
    "groups": {"value", "$ref", "display", "type"},
}
_GROUP_ATTRIBUTES = {"displayName": None, "members": {"value", "$ref", "type", "display"}}


def _trimmed(schema: dict[str, Any], keep: dict[str, set[str] | None]) -> dict[str, Any]:
    attributes = []
    for attribute in schema["attributes"]:
        if attribute["name"] not in keep:
            continue
        subs = keep[attribute["name"]]
        if subs is not None:
            attribute["subAttributes"] = [
                sub for sub in attribute.get("subAttributes", []) if sub["name"] in subs
            ]
        attributes.append(attribute)
    schema["attributes"] = attributes
    return schema


def _user_schema(base: str) -> dict[str, Any]:
    schema = _trimmed(User.to_schema().model_dump(), _USER_ATTRIBUTES)
    for attribute in schema["attributes"]:
        if attribute["name"] == "userName":
            # userName is the id: it cannot change once the user exists.
            attribute["mutability"] = "immutable"
        if attribute["name"] == "active":
            # Always has a value: a user given none is active.
            attribute["required"] = True
        if attribute["name"] == "name":
            # The contract's record needs both names.
            attribute["required"] = True
            for sub in attribute["subAttributes"]:
                sub["required"] = True
    schema["meta"] = {"resourceType": "Schema", "location": f"{base}/Schemas/{USER_SCHEMA}"}
    return schema


def _group_schema(base: str, members_limit: int) -> dict[str, Any]:
    schema = _trimmed(Group.to_schema().model_dump(), _GROUP_ATTRIBUTES)
    for attribute in schema["attributes"]:
        if attribute["name"] == "displayName":
            attribute["required"] = True
            attribute["uniqueness"] = "server"
        if attribute["name"] == "members":
            # RFC 7644 lets a server leave out a large multi-valued attribute;
            # a client learns here that it may, and where to page instead.
            attribute["description"] = (
                f"{attribute['description'].rstrip('.')}. An answer carries at most"
                f" {members_limit} members in all (GROUPED_USERS_MAX_LIST_LENGTH): a group"
                " with more comes without `members`, as do the groups of a list that would"
                " pass it. Page through a group's members with"
                ' GET /Users?filter=groups.value eq "<group id>"&startIndex=..&count=..'
            )
            for sub in attribute["subAttributes"]:
                if sub["name"] == "display":
                    # The user's displayName (or "first last"); see group_to_scim.
                    sub["mutability"] = "readOnly"
                    sub["returned"] = "request"
    schema["meta"] = {"resourceType": "Schema", "location": f"{base}/Schemas/{GROUP_SCHEMA}"}
    return schema


def schemas(base: str, *, members_limit: int) -> dict[str, dict[str, Any]]:
    return {USER_SCHEMA: _user_schema(base), GROUP_SCHEMA: _group_schema(base, members_limit)}


def resource_types(base: str) -> dict[str, dict[str, Any]]:
    def one(name: str, endpoint: str, schema: str) -> dict[str, Any]:
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": name,
            "name": name,
            "endpoint": endpoint,
            "description": name,
            "schema": schema,
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{name}"},
        }

    return {
        "User": one("User", "/Users", USER_SCHEMA),
        "Group": one("Group", "/Groups", GROUP_SCHEMA),
    }


def service_provider_config(base: str) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/grouped-users/grouped-users#scim-20",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "An API token of grouped-users: `grouped-users token create`"
                " (reader to read, writer to change).",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }
