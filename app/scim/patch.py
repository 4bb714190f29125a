"""PATCH (RFC 7644 §3.5.2): scim2-models applies it to the resource as the transaction sees it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scim2_models import Context, Group, PatchOp, SCIMException

from app.scim.errors import ScimError
from app.scim.resources import (
    UserModel,
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


def _apply(patch: Any, resource: Any) -> None:
    try:
        patch.patch(resource)
    except SCIMException as exc:
        raise ScimError(exc.status, exc.detail, exc.scim_type or None) from None
    except (ValueError, TypeError) as exc:
        raise ScimError(400, f"The patch cannot be applied: {exc}.", "invalidValue") from None


def user_change(body: Any) -> Callable[[ScimUser], ScimUser]:
    """The change a PatchOp body makes to a user; parsed now, so a bad body fails early."""
    patch = parse(UserPatch, body, Context.RESOURCE_PATCH_REQUEST)

    def change(current: ScimUser) -> ScimUser:
        resource = user_to_scim(current, "")
        _apply(patch, resource)
        wanted = user_from_scim(resource)
        if wanted.userid != current.userid:
            raise ScimError(
                400,
                f"userName is the user's id and cannot change from {current.userid!r}.",
                "mutability",
            )
        return wanted

    return change


def group_change(body: Any) -> Callable[[ScimGroup], ScimGroup]:
    patch = parse(GroupPatch, body, Context.RESOURCE_PATCH_REQUEST)

    def change(current: ScimGroup) -> ScimGroup:
        resource = group_to_scim(current, "", name="current")
        _apply(patch, resource)
        return group_from_scim(resource)

    return change
