"""Users and groups as scim2-models resources, and back; the discovery documents."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from scim2_models import (
    Context,
    Email,
    EnterpriseUser,
    Group,
    GroupMember,
    GroupMembership,
    Meta,
    Name,
    SCIMException,
    ScimPolicy,
    User,
)

from app.clock import as_utc
from app.names import (
    NAME_RULE,
    PERSON_NAME_RULE,
    ascii_lower,
    is_valid_name,
    is_valid_person_name,
)
from app.scim.errors import ScimError, invalid_value
from app.service.scim_groups import ScimGroup, ScimGroupView
from app.service.scim_users import ScimEmail, ScimUser, ScimUserView

# Entra ID sends the enterprise extension: it is read, and not stored.
UserModel = User[EnterpriseUser]


def describe(exc: ValidationError) -> str:
    """The first problem of a validation error, in one sentence."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}."


def _scim_type(error: Any, otherwise: str) -> str:
    """The scimType a scim2-models validation error carries (its type is scim_<scimType>)."""
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, SCIMException) and cause.scim_type:
        return cause.scim_type
    kind = str(error.get("type", ""))
    return kind.removeprefix("scim_") if kind.startswith("scim_") else otherwise


def parse(
    model: Any,
    body: Any,
    context: Context,
    policy: ScimPolicy | None = None,
    *,
    otherwise: str = "invalidValue",
) -> Any:
    """A request body as a scim2-models object; 400 with what is wrong otherwise.

    The scimType is the one scim2-models names, else `otherwise`: a resource's
    bad value is invalidValue, a PatchOp that is no PatchOp invalidSyntax.
    """
    try:
        return model.model_validate(body, scim_ctx=context, scim_policy=policy)
    except ValidationError as exc:
        first = exc.errors()[0]
        scim_type = _scim_type(first, otherwise)
        if context == Context.SEARCH_REQUEST and first["loc"][:1] == ("filter",):
            scim_type = "invalidFilter"
        raise ScimError(400, describe(exc), scim_type) from None
    except SCIMException as exc:
        raise ScimError(exc.status, exc.detail, exc.scim_type or None) from None
    except RecursionError:
        raise ScimError(400, "The body is nested too deeply.", "invalidSyntax") from None


def _text(field: str, value: str | None, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise invalid_value(f"{field} is required.")
        return None
    if not is_valid_person_name(value):
        raise invalid_value(f"{field} {value!r} {PERSON_NAME_RULE}.")
    return value


def user_name(value: str | None) -> str:
    """The userid of a userName: SCIM userName ignores case, so it is stored lower-cased.

    Only A-Z are lowered; the name rule is checked on everything else as sent.
    """
    if not value:
        raise invalid_value("userName is required.")
    userid = ascii_lower(value)
    if not is_valid_name(userid):
        raise invalid_value(f"userName {value!r} {NAME_RULE} (upper case is lowered).")
    return userid


def user_from_scim(resource: User[Any]) -> ScimUser:
    name = resource.name or Name()
    first = _text("name.givenName", name.given_name, required=True)
    last = _text("name.familyName", name.family_name, required=True)
    assert first is not None
    assert last is not None
    emails = []
    for index, email in enumerate(resource.emails or []):
        value = _text(f"emails[{index}].value", email.value, required=True)
        assert value is not None
        kind = None if email.type is None else str(getattr(email.type, "value", email.type))
        emails.append(ScimEmail(value, _text(f"emails[{index}].type", kind), bool(email.primary)))
    if sum(email.primary for email in emails) > 1:
        raise invalid_value("At most one of emails may be primary.")
    return ScimUser(
        userid=user_name(resource.user_name),
        first_name=first,
        last_name=last,
        active=True if resource.active is None else bool(resource.active),
        external_id=_text("externalId", resource.external_id),
        display_name=_text("displayName", resource.display_name),
        emails=tuple(emails),
    )


def base_url(request_base: str) -> str:
    return request_base.rstrip("/") + "/scim/v2"


def user_to_scim(view: ScimUserView | ScimUser, base: str) -> User[Any]:
    user = view.user if isinstance(view, ScimUserView) else view
    resource = UserModel(
        id=user.userid,
        user_name=user.userid,
        external_id=user.external_id,
        name=Name(given_name=user.first_name, family_name=user.last_name),
        display_name=user.display_name,
        active=user.active,
        emails=[Email(value=e.value, type=e.type, primary=e.primary) for e in user.emails] or None,
    )
    if isinstance(view, ScimUserView):
        resource.groups = [
            GroupMembership(value=name, display=display, ref=f"{base}/Groups/{name}", type="direct")
            for name, display in view.groups
        ] or None
        resource.meta = Meta(
            resource_type="User",
            created=as_utc(view.created),
            last_modified=as_utc(view.last_modified),
            location=f"{base}/Users/{user.userid}",
            version=view.etag,
        )
    return resource


def group_from_scim(resource: Group) -> ScimGroup:
    display = _text("displayName", resource.display_name, required=True)
    assert display is not None
    members: list[str] = []
    for index, member in enumerate(resource.members or []):
        if member.type is not None and str(member.type).lower() not in ("user",):
            raise invalid_value(f"members[{index}]: only users can be members, not {member.type}.")
        if not member.value:
            raise invalid_value(f"members[{index}].value is required.")
        if not is_valid_name(member.value):
            raise invalid_value(f"members[{index}].value {member.value!r} is not the id of a user.")
        members.append(member.value)
    return ScimGroup(
        display, _text("externalId", resource.external_id), tuple(sorted(set(members)))
    )


def group_to_scim(
    view: ScimGroupView | ScimGroup,
    base: str,
    name: str | None = None,
    *,
    member_display: bool = False,
) -> Group:
    """A group as SCIM shows it; `members.display` only when asked for.

    members.display is published with returned "request" (RFC 7643 section 7): it
    is sent when `attributes` names it, not by default. The reason is
    scim2-tester (0.5.2, checkers/patch_add.py and patch_replace.py): its
    PATCH add / replace checks on `members` compare the whole list returned,
    by the PATCH response and by the next GET, with the list they sent
    (utils.fields_equality, a model_dump equality); they never send a display
    (it is readOnly here), so a display the server fills in fails them.
    """
    if isinstance(view, ScimGroup):
        return Group(
            id=name,
            display_name=view.display_name,
            external_id=view.external_id,
            members=[GroupMember(value=userid, type="User") for userid in view.members] or None,
        )
    resource = Group(
        id=view.name,
        display_name=view.display_name,
        external_id=view.external_id,
        meta=Meta(
            resource_type="Group",
            created=as_utc(view.created),
            last_modified=as_utc(view.last_modified),
            location=f"{base}/Groups/{view.name}",
            version=view.etag,
        ),
    )
    if view.members:
        resource.members = [
            GroupMember(
                value=userid,
                ref=f"{base}/Users/{userid}",
                type="User",
                display=display if member_display else None,
            )
            for userid, display in view.members
        ]
    return resource
