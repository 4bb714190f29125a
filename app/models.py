"""Tables: users, groups and the memberships between them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    false,
    func,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.names import NAME_LENGTH, PERSON_NAME_LENGTH

# SCIM strings (displayName, externalId, emails): 256 characters; their
# case-insensitive keys are casefold()ed, which can triple a character.
SCIM_TEXT_LENGTH = 256
SCIM_KEY_LENGTH = 3 * SCIM_TEXT_LENGTH

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
    # fillfactor: room on PostgreSQL's pages for the new row versions that
    # version bumps write, so that they touch no index (alembic 0011).
    __table_args__ = ({"sqlite_autoincrement": True, "postgresql_with": {"fillfactor": 80}},)

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
    # SCIM-only attributes; the contract's record does not show them.
    active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    external_id: Mapped[str | None] = mapped_column(String(SCIM_TEXT_LENGTH))
    display_name: Mapped[str | None] = mapped_column(String(SCIM_TEXT_LENGTH))
    # casefold(display_name), for filters that ignore case on both databases.
    display_key: Mapped[str | None] = mapped_column(String(SCIM_KEY_LENGTH))


class Group(Base):
    __tablename__ = "groups"
    # display_key's unique key is a unique index: SQLite adds one to a table
    # in place, where a UNIQUE constraint would make Alembic rebuild the
    # table, and dropping the old groups table would cascade to memberships.
    __table_args__ = (
        Index("ix_groups_display_key", "display_key", unique=True),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(name_type(), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # SCIM displayName; NULL means the name (groups made by the core API).
    display_name: Mapped[str | None] = mapped_column(String(SCIM_TEXT_LENGTH))
    # casefold(displayName): unique, so that no two groups show names that
    # differ only in case. Every insert sets it (the name for core groups);
    # NULL, from rows written by hand, reads as the name.
    display_key: Mapped[str | None] = mapped_column(String(SCIM_KEY_LENGTH))
    external_id: Mapped[str | None] = mapped_column(String(SCIM_TEXT_LENGTH))


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


class UserEmail(Base):
    """A user's SCIM emails, in the order they were given."""

    __tablename__ = "user_emails"

    user_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(String(SCIM_TEXT_LENGTH))
    # casefold(value): emails.value filters ignore case.
    value_key: Mapped[str] = mapped_column(String(SCIM_KEY_LENGTH), index=True)
    type: Mapped[str | None] = mapped_column(String(SCIM_TEXT_LENGTH))
    is_primary: Mapped[bool] = mapped_column(Boolean, server_default=false())


class Token(Base):
    __tablename__ = "tokens"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(name_type(), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the secret, hex; the secret itself is never stored.
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    __tablename__ = "audit"
    __table_args__ = (
        Index("ix_audit_resource_id", "resource", "id"),
        Index("ix_audit_actor_id", "actor", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(NAME_LENGTH))
    action: Mapped[str] = mapped_column(String(32))
    # "users/jsmith", "groups/admins", "groups/admins/members/jsmith", "tokens/ci"
    resource: Mapped[str] = mapped_column(String(160))
    before: Mapped[Any | None] = mapped_column(JSON)
    after: Mapped[Any | None] = mapped_column(JSON)
    # As the answer's X-Request-ID: the client's, which two requests may share.
    request_id: Mapped[str | None] = mapped_column(String(128))
    # The server's own, unique; NULL in entries older than the column.
    server_request_id: Mapped[str | None] = mapped_column(String(128))
    # The token's id, which no later token gets; no foreign key: the entry
    # outlives the token's revocation.
    token_id: Mapped[int | None] = mapped_column(IdType)


class EventCounter(Base):
    """One row: the last feed position handed out, and how far the feed was purged.

    Each writing transaction updates this row last, just before it commits:
    the row lock orders the commits that carry events (see app.repository.events).
    """

    __tablename__ = "event_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    purged_through: Mapped[int] = mapped_column(BigInteger)


class EventOutbox(Base):
    """A transaction's events on PostgreSQL, from its commit statement to its COMMIT.

    COMMIT runs a deferred trigger on the row (alembic 0009) that takes the
    positions from event_counter, writes the events and deletes the row: the
    counter's lock is held inside the commit only (see app.repository.events).
    """

    __tablename__ = "event_outbox"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    events: Mapped[Any] = mapped_column(JSON)


class Event(Base):
    """A change, at its place in the feed (positions follow commit order, without gaps)."""

    __tablename__ = "events"

    # The rowid on SQLite, where a trigger advances the counter as each event
    # is inserted (alembic 0010); on PostgreSQL the commit's trigger gives it.
    position: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[Any] = mapped_column(JSON)


class Webhook(Base):
    """An endpoint that receives the feed; `cursor` is the last position queued for it."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    # None: every type.
    types: Mapped[list[str] | None] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean)
    description: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # "whsec_..." or, with GROUPED_USERS_SECRET_KEY set, its Fernet token.
    secret: Mapped[str] = mapped_column(String(512))
    # After a rotation deliveries are signed with the previous secret too
    # until then (stored as `secret` is), so receivers can switch without a gap.
    previous_secret: Mapped[str | None] = mapped_column(String(512))
    previous_secret_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cursor: Mapped[int] = mapped_column(BigInteger)
    # A delivering process holds the endpoint until then (one in flight).
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    # The first failure since the last success.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """One event to send to one endpoint: pending, delivered or failed."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_queue", "webhook_id", "state", "event_position"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("webhooks.id", ondelete="CASCADE")
    )
    event_position: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookAttempt(Base):
    """One POST of a delivery: when, what came back (status or error), how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(256))
    duration_ms: Mapped[int] = mapped_column(Integer)
