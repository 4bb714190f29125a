"""/groups/{name}: list, create, set the members of and delete groups."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status
from pydantic import JsonValue, WithJsonSchema

from app import service
from app.api.body import JSONBodyRoute
from app.api.deps import GroupPath, ReaderSession, WriterSession
from app.api.docs import BODY_ERRORS, problem_responses, validation_example
from app.errors import (
    GroupExists,
    GroupHasNoMembers,
    GroupNotFound,
    InvalidName,
    NonEmptyBody,
    UnknownUsers,
)
from app.schemas import MEMBERS_EXAMPLE, NameList

router = APIRouter(prefix="/groups", tags=["groups"], route_class=JSONBodyRoute)

NOT_FOUND = GroupNotFound("admins")
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


@router.get(
    "/{name}",
    response_model=list[str],
    responses={
        200: {"content": {"application/json": {"example": MEMBERS_EXAMPLE}}},
        **problem_responses(NOT_FOUND, GroupHasNoMembers("admins")),
    },
)
async def get_group(name: GroupPath, session: ReaderSession) -> list[str]:
    """List the group's members, sorted; a group with no members answers 404."""
    return await service.get_group_members(session, name=name)


@router.post(
    "/{name}",
    status_code=status.HTTP_201_CREATED,
    response_model=list[str],
    responses={
        201: {"content": {"application/json": {"example": []}}},
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
    body: EmptyBody = None,
) -> list[str]:
    """Create an empty group; send no body or `[]`, then set members with PUT."""
    # FastAPI reads a JSON `null` as no body at all; the raw bytes tell them apart.
    sent_null = body is None and (await request.body()).strip() != b""
    if sent_null or (body is not None and body != []):
        raise NonEmptyBody()
    created = await service.create_group(session, name=name)
    response.headers["Location"] = f"/groups/{name}"
    return created


@router.put(
    "/{name}",
    response_model=list[str],
    responses={
        200: {"content": {"application/json": {"example": MEMBERS_EXAMPLE}}},
        **problem_responses(
            NOT_FOUND,
            validation_example(
                "invalid_member_list", "members[1]", "'jsmith' is listed more than once"
            ),
            UnknownUsers(["mjones"], MEMBERS_EXAMPLE),
            *BODY_ERRORS,
        ),
    },
)
async def replace_group_members(
    name: GroupPath, members: MembersBody, session: WriterSession
) -> list[str]:
    """Set the group's members to exactly this list of existing userids."""
    return await service.replace_group_members(session, name=name, userids=members)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(NOT_FOUND),
)
async def delete_group(name: GroupPath, session: WriterSession) -> Response:
    """Delete the group and all its memberships."""
    await service.delete_group(session, name=name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
