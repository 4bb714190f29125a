"""Dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.errors import ListTooLong
from app.names import NAME_LENGTH, NAME_PATTERN


def statement_reader(request: Request) -> AsyncSession:
    """The session of a use case that reads with one statement (Database.statement_reader)."""
    database: Database = request.app.state.database
    return database.statement_reader()


# The name rule is stated in the document (a generated client checks it
# before sending) but not enforced here: a lookup of a name that breaks it is
# a 404 and a creation a 422 with the rule, which the service decides.
NAME_RULE_SCHEMA: dict[str, Any] = {
    "minLength": 1,
    "maxLength": NAME_LENGTH,
    "pattern": NAME_PATTERN,
}
_USERID = ("userid", "The user's id.", "jsmith")
_GROUP = ("name", "The group's name.", "admins")
_TOKEN = ("name", "The token's name.", "ci")


def _named(description: str, example: str) -> Any:
    return Path(description=description, examples=[example], json_schema_extra=NAME_RULE_SCHEMA)


UseridPath = Annotated[str, _named(*_USERID[1:])]
GroupPath = Annotated[str, _named(*_GROUP[1:])]
TokenPath = Annotated[str, _named(*_TOKEN[1:])]


def _path_parameter(name: str, description: str, example: str) -> dict[str, Any]:
    """A string path parameter in OpenAPI, as FastAPI declares one (tests compare)."""
    schema = {"type": "string", "description": description, "examples": [example]}
    schema |= NAME_RULE_SCHEMA
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema | {"title": name.title()},
        "description": description,
    }


# The hot GETs read their path parameter from request.path_params and declare
# it with these (openapi_extra): FastAPI's parameter machinery, even for one
# plain string, was ~6 % of a lookup (callgrind). Same documentation.
USERID_PARAMETER = _path_parameter(*_USERID)
GROUP_PARAMETER = _path_parameter(*_GROUP)


async def _list_limit(request: Request) -> int:
    limit: int = request.app.state.settings.max_list_length
    return limit


# The longest list a body may carry (GROUPED_USERS_MAX_LIST_LENGTH).
ListLimit = Annotated[int, Depends(_list_limit)]


async def _search_timeout_ms(request: Request) -> int:
    limit: int = request.app.state.settings.search_timeout_ms
    return limit


# How long a search may run in the database (GROUPED_USERS_SEARCH_TIMEOUT_MS).
SearchTimeoutMs = Annotated[int, Depends(_search_timeout_ms)]


def check_length(field: str, values: Sequence[str] | None, limit: int) -> None:
    if values is not None and len(values) > limit:
        raise ListTooLong(field, len(values), limit)
