"""Dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def reader_session(
    database: Annotated[Database, Depends(get_database)],
) -> AsyncIterator[AsyncSession]:
    async with database.reader() as session:
        yield session


async def writer_session(
    database: Annotated[Database, Depends(get_database)],
) -> AsyncIterator[AsyncSession]:
    async with database.writer() as session:
        yield session


ReaderSession = Annotated[AsyncSession, Depends(reader_session)]
WriterSession = Annotated[AsyncSession, Depends(writer_session)]

# Path names are not constrained here: a lookup of a name that breaks the
# rule is a 404 and a creation a 422 with the rule, which the service decides.
UseridPath = Annotated[str, Path(description="The user's id.", examples=["jsmith"])]
GroupPath = Annotated[str, Path(description="The group's name.", examples=["admins"])]
