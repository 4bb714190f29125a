"""Pydantic models for what comes in and what goes out."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from app.auth import DURATION_PATTERN
from app.names import (
    NAME_LENGTH,
    NAME_PATTERN,
    NAME_RULE,
    NO_CONTROL_PATTERN,
    PERSON_NAME_LENGTH,
    PERSON_NAME_RULE,
    is_valid_name,
    is_valid_person_name,
)

T = TypeVar("T", bound=Hashable)


def _check_name(value: str) -> str:
    if not is_valid_name(value):
        raise PydanticCustomError("invalid_name", f"{value!r} {NAME_RULE}")
    return value


def _check_person_name(value: str) -> str:
    if not is_valid_person_name(value):
        raise PydanticCustomError("invalid_person_name", PERSON_NAME_RULE)
    return value


def _check_unique(values: list[T]) -> list[T]:
    seen: set[T] = set()
    for index, value in enumerate(values):
        if value in seen:
            # A list-level check has no location of its own: `index` lets the
            # error table point at the entry ("groups[2]").
            raise PydanticCustomError(
                "duplicate_entry",
                "{value} is listed more than once",
                {"value": repr(value), "index": index},
            )
        seen.add(value)
    return values


NAME_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": NAME_LENGTH,
    "pattern": NAME_PATTERN,
    "description": f"A name that {NAME_RULE}.",
}
Name = Annotated[str, AfterValidator(_check_name), WithJsonSchema(NAME_SCHEMA)]
PERSON_NAME_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": PERSON_NAME_LENGTH,
    "pattern": NO_CONTROL_PATTERN,
}
PersonName = Annotated[str, AfterValidator(_check_person_name), WithJsonSchema(PERSON_NAME_SCHEMA)]
# In a merge patch: absent keeps the name; null is refused (a name cannot be
# removed), so the document shows only the string it may be.
PatchedPersonName = Annotated[
    PersonName | None,
    WithJsonSchema(PERSON_NAME_SCHEMA | {"description": "If sent, the new name; never null."}),
]
NameList = Annotated[
    list[Name],
    AfterValidator(_check_unique),
    Field(json_schema_extra={"uniqueItems": True}),
]


class UserRecordIn(BaseModel):
    """A user record as sent by a client (POST and PUT)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"first_name": "Joe", "last_name": "Smith", "groups": ["admins", "users"]}]
        },
    )

    first_name: PersonName
    last_name: PersonName
    # Optional, never null (see below); documented as the string it must be.
    userid: Annotated[
        Name | None,
        WithJsonSchema(
            NAME_SCHEMA | {"description": "Optional; when present it must equal the path's."}
        ),
    ] = None
    groups: NameList = Field(
        default_factory=list, description="Names of existing groups; absent means none."
    )

    @field_validator("userid", mode="before")
    @classmethod
    def _userid_not_null(cls, value: Any) -> Any:
        # Absent is allowed, an explicit null is not: it is neither a userid
        # nor the one in the path.
        if value is None:
            raise PydanticCustomError("string_type", "Input should be a valid string")
        return value


class UserPatch(BaseModel):
    """A JSON merge patch (RFC 7396) of a user record: what is sent changes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"last_name": "Smith-Jones"}, {"groups": ["users"]}]},
    )

    first_name: PatchedPersonName = None
    last_name: PatchedPersonName = None
    # null removes every group, as an absent list means none.
    groups: NameList | None = None
    userid: Annotated[
        Name | None,
        WithJsonSchema(NAME_SCHEMA | {"description": "If sent, it must equal the path's."}),
    ] = None

    def nulled(self) -> list[str]:
        """Fields sent as null that cannot be removed."""
        return [
            field
            for field in ("first_name", "last_name", "userid")
            if field in self.model_fields_set and getattr(self, field) is None
        ]


class UserRecord(BaseModel):
    """A stored user record; `groups` is sorted."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "first_name": "Joe",
                    "last_name": "Smith",
                    "userid": "jsmith",
                    "groups": ["admins", "users"],
                }
            ]
        }
    )

    first_name: str
    last_name: str
    userid: str
    groups: list[str]


MEMBERS_EXAMPLE = ["jsmith", "mjones"]


class FieldError(BaseModel):
    field: str = Field(examples=["groups[2]"])
    message: str = Field(examples=["'Admins' " + NAME_RULE])


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | SkipJsonSchema[None] = None


class GroupSummary(BaseModel):
    name: str
    member_count: int


class UserPage(BaseModel):
    """A page of users, sorted by userid; pass `next_cursor` back for the next one."""

    items: list[UserRecord]
    next_cursor: str | None


class GroupPage(BaseModel):
    """A page of groups, sorted by name; pass `next_cursor` back for the next one."""

    items: list[GroupSummary]
    next_cursor: str | None


class TokenCreate(BaseModel):
    """A new API token: its secret is in the response, once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "ci", "role": "writer", "expires_in": "90d"}]},
    )

    name: Name
    role: Literal["reader", "writer", "admin"]
    expires_in: str | None = Field(
        default=None,
        description="A duration such as 90s, 15m, 12h or 30d; none: never.",
        json_schema_extra={"pattern": DURATION_PATTERN},
    )


class TokenOut(BaseModel):
    id: int = Field(description="Never reused; audit entries name the token by it too.")
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret; it is shown this once and never stored.")


# The resource before or after a change, as its own endpoint shows it; null
# where there was none (before a creation, after a deletion).
Snapshot = Annotated[
    JsonValue,
    WithJsonSchema({"description": "The resource as its endpoint shows it, or null."}),
]


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    resource: str
    before: Snapshot
    after: Snapshot
    request_id: str | None = Field(
        description="The request's X-Request-ID: the client's, if it sent one, else the server's."
    )
    server_request_id: str | None = Field(
        description="The server's own id of the request, never shared by two requests;"
        " null for entries written before it was recorded."
    )
    token_id: int | None = Field(
        description="The id of the actor's token (never reused, unlike its name);"
        " null for anonymous, command-line and older entries."
    )


class AuditPage(BaseModel):
    """Audit entries, newest first; pass `next_cursor` back for older ones."""

    items: list[AuditEntryOut]
    next_cursor: str | None


# How a validation error of these models is reported, by the API (422) and
# by the import (its bad rows) alike.


def error_location(error: Mapping[str, Any]) -> tuple[int | str, ...]:
    """Where the error is; a repeated entry (duplicate_entry) names the repeat's index."""
    loc = tuple(error["loc"])
    if error.get("type") == "duplicate_entry":
        return (*loc, error["ctx"]["index"])
    return loc


def error_message(error: Mapping[str, Any], *, resource: str) -> str:
    """What is wrong, in the contract's words; `resource` names what has no such field."""
    kind = error.get("type")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return f"is not a field of {resource}"
    return str(error["msg"])
