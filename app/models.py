"""Tables: users, groups and the memberships between them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAME_LENGTH = 64
PERSON_NAME_LENGTH = 256

# Constraint names that Alembic can refer to on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def name_type() -> String:
    # Byte order ("C") on PostgreSQL, as SQLite's BINARY: sorted lists and
    # keyset pages then agree on both databases and with Python's sorted().
    return String(NAME_LENGTH).with_variant(String(NAME_LENGTH, collation="C"), "postgresql")


# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"
    # AUTOINCREMENT: SQLite never hands a deleted user's id to a new one, so
    # an ETag ("id.version") of a deleted user never matches its successor.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    userid: Mapped[str] = mapped_column(name_type(), unique=True)
    first_name: Mapped[str] = mapped_column(String(PERSON_NAME_LENGTH))
    last_name: Mapped[str] = mapped_column(String(PERSON_NAME_LENGTH))
    # casefold(first_name) + "\n" + casefold(last_name), for ?q= searches that
    # ignore case in any script alike on SQLite (whose lower() is ASCII only)
    # and PostgreSQL. Names hold no control characters, so "\n" separates.
    search_names: Mapped[str] = mapped_column(String(2 * PERSON_NAME_LENGTH * 3 + 1))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(name_type(), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Membership(Base):
    __tablename__ = "memberships"

    # The primary key (group_id, user_id) is the unique key on the pair and
    # serves "members of a group"; the index below serves "groups of a user".
    group_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (Index("ix_memberships_user_id_group_id", "user_id", "group_id"),)
