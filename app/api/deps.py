"""Dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.errors import ListTooLong


def statement_reader(request: Request) -> AsyncSession:
    """The session of a use case that reads with one statement (Database.statement_reader)."""
    database: Database = request.app.state.database
    return database.statement_reader()


# Path names are not constrained here: a lookup of a name that breaks the
# rule is a 404 and a creation a 422 with the rule, which the service decides.
_USERID = ("userid", "The user's id.", "jsmith")
_GROUP = ("name", "The group's name.", "admins")
UseridPath = Annotated[str, Path(description=_USERID[1], examples=[_USERID[2]])]
GroupPath = Annotated[str, Path(description=_GROUP[1], examples=[_GROUP[2]])]


def _path_parameter(name: str, description: str, example: str) -> dict[str, Any]:
    """A string path parameter in OpenAPI, as FastAPI declares one (tests compare)."""
    schema = {"type": "string", "description": description, "examples": [example]}
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema | {"title": name.title()},
        "description": description,
    }


# The hot GETs read their path parameter from request.path_params and declare
# it with these (openapi_extra): FastAPI's parameter machinery, even for one
# plain string, was ~6 % of a lookup (callgrind, #7). Same documentation.
USERID_PARAMETER = _path_parameter(*_USERID)
GROUP_PARAMETER = _path_parameter(*_GROUP)


async def _list_limit(request: Request) -> int:
    limit: int = request.app.state.settings.max_list_length
    return limit


# The longest list a body may carry (GROUPED_USERS_MAX_LIST_LENGTH).
ListLimit = Annotated[int, Depends(_list_limit)]


def check_length(field: str, values: Sequence[str] | None, limit: int) -> None:
    if values is not None and len(values) > limit:
        raise ListTooLong(field, len(values), limit)
