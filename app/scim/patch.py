"""PATCH (RFC 7644 section 3.5.2).

scim2-models applies it to the resource as the transaction sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from scim2_models import Context, Group, PatchOp, SCIMException, ScimPolicy

from app.scim.errors import ScimError
from app.scim.resources import (
    UserModel,
    describe,
    group_from_scim,
    group_to_scim,
    parse,
    user_from_scim,
    user_to_scim,
)
from app.service.scim_groups import ScimGroup
from app.service.scim_users import ScimUser

UserPatch = PatchOp[UserModel]
GroupPatch = PatchOp[Group]

# What Microsoft Entra ID sends beyond the RFC: a remove of members naming
# them in `value` ({"op": "Remove", "path": "members", "value": [{"value":
# id}]}), and an add / replace through a filter no entry matches yet
# (`emails[type eq "work"].value` on a user without a work email), which
# creates the entry.
POLICY = ScimPolicy(
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)


def _apply(patch: Any, resource: Any) -> None:
    try:
        patch.patch(resource, scim_policy=POLICY)
    except SCIMException as exc:
        cause = exc.__cause__
        detail = describe(cause) if isinstance(cause, ValidationError) else exc.detail
        raise ScimError(exc.status, detail, exc.scim_type or None) from None
    except ValidationError as exc:
        raise ScimError(
            400, f"The patch cannot be applied: {describe(exc)}", "invalidValue"
        ) from None
    except (ValueError, TypeError) as exc:
        raise ScimError(400, f"The patch cannot be applied: {exc}.", "invalidValue") from None


def user_change(body: Any) -> Callable[[ScimUser], ScimUser]:
    """The change a PatchOp body makes to a user; parsed now, so a bad body fails early."""
    patch = parse(
        UserPatch, body, Context.RESOURCE_PATCH_REQUEST, POLICY, otherwise="invalidSyntax"
    )

    def change(current: ScimUser) -> ScimUser:
        resource = user_to_scim(current, "")
        _apply(patch, resource)
        return same_user_name(current, user_from_scim(resource))

    return change


def same_user_name(current: ScimUser, wanted: ScimUser) -> ScimUser:
    """`wanted`, if it keeps the userName: it is the user's id, which never changes."""
    if wanted.userid != current.userid:
        raise ScimError(
            400,
            f"userName is the user's id and cannot change from {current.userid!r}.",
            "mutability",
        )
    return wanted


def group_change(body: Any) -> Callable[[ScimGroup], ScimGroup]:
    patch = parse(
        GroupPatch, body, Context.RESOURCE_PATCH_REQUEST, POLICY, otherwise="invalidSyntax"
    )

    def change(current: ScimGroup) -> ScimGroup:
        resource = group_to_scim(current, "", name="current")
        _apply(patch, resource)
        return group_from_scim(resource)

    return change
