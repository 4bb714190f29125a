"""/groups: list, create, set the members of and delete groups; single memberships."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Query, Request, Response, status
from pydantic import JsonValue, WithJsonSchema

from app.api.deps import (
    GROUP_PARAMETER,
    GroupPath,
    ListLimit,
    UseridPath,
    check_length,
    statement_reader,
)
from app.api.docs import BODY_ERRORS, problem_responses, validation_example
from app.api.etags import (
    ETAG_HEADER,
    IfMatchHeader,
    conditional_json,
    tagged,
)
from app.api.routes import conditional_get, done, no_content, resource_router
from app.errors import (
    GroupExists,
    GroupHasNoMembers,
    GroupNotFound,
    InvalidCursor,
    InvalidName,
    NonEmptyBody,
    NotAMember,
    PreconditionFailed,
    UnknownUsers,
    UserNotFound,
)
from app.schemas import MEMBERS_EXAMPLE, GroupPage, NameList
from app.service import groups as service
from app.service import listing
from app.service import memberships as membership_service
from app.web.access import CurrentActor
from app.web.sessions import ReaderSession, WriterSession

router = resource_router("groups")

NOT_FOUND = GroupNotFound("admins")
PRECONDITION_FAILED = PreconditionFailed("Group 'admins'", '"7.12"')
MembersBody = Annotated[
    NameList,
    Body(
        openapi_examples={
            "members": {"summary": "Two members", "value": MEMBERS_EXAMPLE},
            "empty": {"summary": "No members", "value": []},
        }
    ),
]
EmptyBody = Annotated[
    JsonValue,
    Body(openapi_examples={"empty list": {"summary": "An empty list", "value": []}}),
    WithJsonSchema({"type": "array", "maxItems": 0, "items": {}}),
]


def _members(example: list[str]) -> dict[str, object]:
    return {"content": {"application/json": {"example": example}}, "headers": ETAG_HEADER}


@router.get(
    "",
    response_model=GroupPage,
    responses=problem_responses(
        InvalidCursor(),
        validation_example("invalid_query", "limit", "Input should be greater than or equal to 1"),
    ),
)
async def list_groups(
    session: ReaderSession,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
) -> GroupPage:
    """List groups sorted by name, with their member counts, a page at a time."""
    page = await listing.list_groups(session, limit=limit, cursor=cursor)
    return GroupPage(items=page.items, next_cursor=page.next_cursor)


@conditional_get(
    router,
    "/{name}",
    NOT_FOUND,
    GroupHasNoMembers("admins"),
    model=list[str],
    ok=_members(MEMBERS_EXAMPLE),
    parameter=GROUP_PARAMETER,
)
async def get_group(request: Request) -> Response:
    """List the group's members, sorted; a group with no members answers 404."""
    name: str = request.path_params["name"]
    found = await service.get_members(statement_reader(request), name=name)
    return conditional_json(request, found)


@router.post(
    "/{name}",
    status_code=status.HTTP_201_CREATED,
    response_model=list[str],
    responses={
        201: _members([]),
        **problem_responses(
            GroupExists("admins"), InvalidName("name", "Admins"), NonEmptyBody(), *BODY_ERRORS
        ),
    },
)
async def create_group(
    name: GroupPath,
    session: WriterSession,
    request: Request,
    response: Response,
    actor: CurrentActor,
    body: EmptyBody = None,
) -> list[str]:
    """Create an empty group; send no body or `[]`, then set members with PUT."""
    # FastAPI reads a JSON `null` as no body at all; the raw bytes tell them apart.
    sent_null = body is None and (await request.body()).strip() != b""
    if sent_null or (body is not None and body != []):
        raise NonEmptyBody()
    created = await service.create_group(session, actor=actor, name=name)
    response.headers["Location"] = f"/groups/{name}"
    return tagged(response, created)


@router.put(
    "/{name}",
    response_model=list[str],
    responses={
        200: _members(MEMBERS_EXAMPLE),
        **problem_responses(
            NOT_FOUND,
            validation_example(
                "invalid_member_list", "members[1]", "'jsmith' is listed more than once"
            ),
            UnknownUsers(["mjones"], MEMBERS_EXAMPLE),
            PRECONDITION_FAILED,
            *BODY_ERRORS,
        ),
    },
)
async def replace_group_members(
    name: GroupPath,
    members: MembersBody,
    session: WriterSession,
    response: Response,
    if_match: IfMatchHeader,
    actor: CurrentActor,
    list_limit: ListLimit,
) -> list[str]:
    """Set the group's members to exactly this list of existing userids."""
    check_length("members", members, list_limit)
    stored = await service.replace_members(
        session, actor=actor, name=name, userids=members, if_match=if_match
    )
    return tagged(response, stored)


@no_content(router, "DELETE", "/{name}", NOT_FOUND, PRECONDITION_FAILED)
async def delete_group(
    name: GroupPath, session: WriterSession, if_match: IfMatchHeader, actor: CurrentActor
) -> Response:
    """Delete the group and all its memberships."""
    await service.delete_group(session, actor=actor, name=name, if_match=if_match)
    return done()


@no_content(router, "PUT", "/{name}/members/{userid}", NOT_FOUND, UserNotFound("jsmith"))
async def add_member(
    name: GroupPath, userid: UseridPath, session: WriterSession, actor: CurrentActor
) -> Response:
    """Make the user a member of the group; doing it again changes nothing."""
    await membership_service.add_member(session, actor=actor, name=name, userid=userid)
    return done()


@no_content(
    router,
    "DELETE",
    "/{name}/members/{userid}",
    NOT_FOUND,
    UserNotFound("jsmith"),
    NotAMember("admins", "jsmith"),
)
async def remove_member(
    name: GroupPath, userid: UseridPath, session: WriterSession, actor: CurrentActor
) -> Response:
    """Remove the user from the group; 404 says whether group, user or membership is missing."""
    await membership_service.remove_member(session, actor=actor, name=name, userid=userid)
    return done()
