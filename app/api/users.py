"""/users: list, fetch, create, replace, patch and delete user records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Body, Depends, Query, Request, Response, status
from fastapi.types import DecoratedCallable

from app.api.deps import (
    USERID_PARAMETER,
    ListLimit,
    SearchTimeoutMs,
    UseridPath,
    check_length,
    statement_reader,
)
from app.api.docs import (
    BODY_ERRORS,
    PRECONDITION_FAILED,
    Example,
    problem_responses,
    validation_example,
)
from app.api.etags import (
    ETAG_HEADER,
    IfMatchHeader,
    conditional_json,
    json_page,
    tagged,
)
from app.api.routes import conditional_get, done, no_content, resource_router
from app.errors import (
    InvalidCursor,
    InvalidName,
    InvalidSearch,
    NullField,
    SearchTimedOut,
    UnknownGroups,
    UserExists,
    UseridMismatch,
    UserNotFound,
)
from app.names import NO_CONTROL_PATTERN, PERSON_NAME_LENGTH
from app.schemas import UserPage, UserPatch, UserRecord, UserRecordIn
from app.service import listing
from app.service import users as service
from app.settings import DEFAULT_SEARCH_TIMEOUT_MS
from app.web.access import CurrentActor
from app.web.sessions import ReaderSession, WriterSession

router = resource_router("users")

RECORD_EXAMPLES = {
    "with groups": {
        "summary": "A user in two groups",
        "value": {"first_name": "Joe", "last_name": "Smith", "groups": ["admins", "users"]},
    },
    "with userid": {
        "summary": "The userid may be repeated; it must equal the path",
        "value": {"first_name": "Joe", "last_name": "Smith", "userid": "jsmith", "groups": []},
    },
}
PATCH_EXAMPLES = {
    "rename": {"summary": "Change the last name only", "value": {"last_name": "Smith-Jones"}},
    "regroup": {"summary": "Set the groups, keep the names", "value": {"groups": ["users"]}},
    "ungroup": {"summary": "null removes every group", "value": {"groups": None}},
}
RecordBody = Annotated[UserRecordIn, Body(openapi_examples=RECORD_EXAMPLES)]
PatchBody = Annotated[
    UserPatch, Body(openapi_examples=PATCH_EXAMPLES, media_type="application/merge-patch+json")
]

INVALID_RECORD = validation_example("invalid_record", "first_name", "is required")
UNKNOWN_GROUPS = UnknownGroups(["staff"], ["admins", "staff"])
NOT_FOUND = UserNotFound("jsmith")
MISMATCH = UseridMismatch("jsmith", "joe")
TAGGED = {"headers": ETAG_HEADER}


def _change(method: str, *errors: Example) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """PUT or PATCH of /users/{userid}: the stored record, tagged, or these errors."""
    return router.api_route(
        "/{userid}",
        methods=[method],
        response_model=UserRecord,
        responses={200: TAGGED, **problem_responses(*errors, *BODY_ERRORS)},
    )


@conditional_get(
    router, "/{userid}", NOT_FOUND, model=UserRecord, ok=TAGGED, parameter=USERID_PARAMETER
)
async def get_user(request: Request) -> Response:
    """Fetch a user record; its groups are sorted."""
    userid: str = request.path_params["userid"]
    found = await service.get_user(statement_reader(request), userid=userid)
    return conditional_json(request, found)


@router.post(
    "/{userid}",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRecord,
    responses={
        201: TAGGED,
        **problem_responses(
            UserExists("jsmith"),
            INVALID_RECORD,
            InvalidName("userid", "J Smith"),
            MISMATCH,
            UNKNOWN_GROUPS,
            *BODY_ERRORS,
        ),
    },
)
async def create_user(
    userid: UseridPath,
    record: RecordBody,
    session: WriterSession,
    response: Response,
    actor: CurrentActor,
    list_limit: ListLimit,
) -> UserRecord:
    """Create a user record; its groups must exist already."""
    check_length("groups", record.groups, list_limit)
    created = await service.create_user(session, actor=actor, userid=userid, record=record)
    response.headers["Location"] = f"/users/{userid}"
    return tagged(response, created)


@dataclass
class _Change:
    """What PUT and PATCH of a user take besides the path and the body."""

    session: WriterSession
    response: Response
    if_match: IfMatchHeader
    actor: CurrentActor
    list_limit: ListLimit

    async def store(self, userid: str, action: str, change: UserRecordIn | UserPatch) -> UserRecord:
        """The change made, its answer tagged."""
        stored = await service.update_user(
            self.session,
            actor=self.actor,
            action=action,
            userid=userid,
            change=change,
            if_match=self.if_match,
        )
        return tagged(self.response, stored)


Changing = Annotated[_Change, Depends()]


@_change("PUT", NOT_FOUND, INVALID_RECORD, MISMATCH, UNKNOWN_GROUPS, PRECONDITION_FAILED)
async def replace_user(userid: UseridPath, record: RecordBody, context: Changing) -> UserRecord:
    """Replace a user record whole: absent groups empty them; the userid cannot change."""
    check_length("groups", record.groups, context.list_limit)
    return await context.store(userid, "user.replace", record)


@_change(
    "PATCH",
    NOT_FOUND,
    validation_example("invalid_record", "last_name", "Input should be a valid string"),
    NullField(["first_name"]),
    MISMATCH,
    UNKNOWN_GROUPS,
    PRECONDITION_FAILED,
)
async def patch_user(userid: UseridPath, patch: PatchBody, context: Changing) -> UserRecord:
    """Change some fields of a user record (JSON merge patch, RFC 7396)."""
    check_length("groups", patch.groups, context.list_limit)
    if nulled := patch.nulled():
        raise NullField(nulled)
    if "groups" in patch.model_fields_set and patch.groups is None:
        # null removes every group, as an absent list means none.
        patch = patch.model_copy(update={"groups": []})
    return await context.store(userid, "user.patch", patch)


@no_content(router, "DELETE", "/{userid}", NOT_FOUND, PRECONDITION_FAILED)
async def delete_user(
    userid: UseridPath, session: WriterSession, if_match: IfMatchHeader, actor: CurrentActor
) -> Response:
    """Delete a user record and all its memberships."""
    await service.delete_user(session, actor=actor, userid=userid, if_match=if_match)
    return done()


# Last: routes are matched in order, and GET /users/{userid} is the hot one.
@router.get(
    "",
    response_model=UserPage,
    responses=problem_responses(
        InvalidCursor(),
        InvalidSearch(),
        validation_example("invalid_query", "limit", "Input should be less than or equal to 1000"),
        SearchTimedOut(DEFAULT_SEARCH_TIMEOUT_MS),
    ),
)
async def list_users(
    session: ReaderSession,
    search_timeout_ms: SearchTimeoutMs,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
    group: Annotated[str | None, Query(description="Only members of this group.")] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=PERSON_NAME_LENGTH,
            description="Case-insensitive part of userid, first or last name.",
            json_schema_extra={"pattern": NO_CONTROL_PATTERN},
        ),
    ] = None,
) -> Response:
    """List users sorted by userid, a page at a time, optionally filtered."""
    page = await listing.list_users(
        session,
        limit=limit,
        cursor=cursor,
        group=group,
        q=q,
        search_timeout_ms=search_timeout_ms,
    )
    return json_page(page.items, page.next_cursor)
