"""The database sessions a route's use case runs in, as dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def reader_session(request: Request) -> AsyncSession:
    """A session for a read-only use case; nothing to close afterwards.

    Reader sessions never begin a transaction by themselves (autobegin is
    off, app.db): a use case opens one with `session.begin()`, whose end
    gives the connection back, or answers from the fast reader without one.
    A plain function, not a generator: FastAPI's exit stack for a generator
    dependency was a noticeable share of a read.
    """
    database: Database = request.app.state.database
    return database.reader()


async def writer_session(
    database: Annotated[Database, Depends(get_database)],
) -> AsyncIterator[AsyncSession]:
    async with database.writer() as session:
        yield session


ReaderSession = Annotated[AsyncSession, Depends(reader_session)]
WriterSession = Annotated[AsyncSession, Depends(writer_session)]
