"""/users/{userid}: fetch, create, replace and delete user records."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response, status

from app import service
from app.api.body import JSONBodyRoute
from app.api.deps import ReaderSession, UseridPath, WriterSession
from app.api.docs import BODY_ERRORS, problem_responses, validation_example
from app.errors import InvalidName, UnknownGroups, UserExists, UseridMismatch, UserNotFound
from app.schemas import UserRecord, UserRecordIn

router = APIRouter(prefix="/users", tags=["users"], route_class=JSONBodyRoute)

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
RecordBody = Annotated[UserRecordIn, Body(openapi_examples=RECORD_EXAMPLES)]

INVALID_RECORD = validation_example("invalid_record", "first_name", "is required")
UNKNOWN_GROUPS = UnknownGroups(["staff"], ["admins", "staff"])
NOT_FOUND = UserNotFound("jsmith")


@router.get("/{userid}", response_model=UserRecord, responses=problem_responses(NOT_FOUND))
async def get_user(userid: UseridPath, session: ReaderSession) -> UserRecord:
    """Fetch a user record; its groups are sorted."""
    return await service.get_user(session, userid=userid)


@router.post(
    "/{userid}",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRecord,
    responses={
        **problem_responses(
            UserExists("jsmith"),
            INVALID_RECORD,
            InvalidName("userid", "J Smith"),
            UseridMismatch("jsmith", "joe"),
            UNKNOWN_GROUPS,
            *BODY_ERRORS,
        ),
    },
)
async def create_user(
    userid: UseridPath, record: RecordBody, session: WriterSession, response: Response
) -> UserRecord:
    """Create a user record; its groups must exist already."""
    created = await service.create_user(session, userid=userid, record=record)
    response.headers["Location"] = f"/users/{userid}"
    return created


@router.put(
    "/{userid}",
    response_model=UserRecord,
    responses=problem_responses(
        NOT_FOUND, INVALID_RECORD, UseridMismatch("jsmith", "joe"), UNKNOWN_GROUPS, *BODY_ERRORS
    ),
)
async def replace_user(
    userid: UseridPath, record: RecordBody, session: WriterSession
) -> UserRecord:
    """Replace a user record whole: absent groups empty them; the userid cannot change."""
    return await service.replace_user(session, userid=userid, record=record)


@router.delete(
    "/{userid}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(NOT_FOUND),
)
async def delete_user(userid: UseridPath, session: WriterSession) -> Response:
    """Delete a user record and all its memberships."""
    await service.delete_user(session, userid=userid)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
