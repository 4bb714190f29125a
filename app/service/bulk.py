"""Use cases of many users at once: import a file of records, export every record."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Actor
from app.errors import Busy, Conflict, DomainError, UnknownGroups
from app.repository import bulk as bulk_repo
from app.repository import groups as group_repo
from app.repository import users as user_repo
from app.schemas import UserRecordIn
from app.service import events
from app.service.audit import record as audit
from app.service.member_lists import lock_in_order, lock_late

DEFAULT_BATCH_SIZE = 10_000
DEFAULT_REPORT_LIMIT = 100
# Rows written from which an import refreshes the planner's statistics.
_ANALYZE_AFTER = 10_000
# PostgreSQL aborts one of two transactions that wait on each other.
_ABORTED_SQLSTATES = frozenset({"40P01", "40001"})


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One record of an import file: validated, or the reason it is not.

    `line` is where it starts in the file (for a JSON array: the element's
    number, from 1); `userid` is the one written there, when there is one.
    """

    line: int
    record: UserRecordIn | None = None
    problem: str | None = None
    userid: str | None = None


class Reason(enum.Enum):
    invalid = "invalid"
    duplicate = "duplicate"
    exists = "exists"
    unknown_groups = "unknown_groups"


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    userid: str | None
    reason: Reason
    message: str


class ImportRefused(DomainError):
    """Some rows are bad: nothing was stored. `bad_rows` holds the first of them."""

    def __init__(self, bad_rows: list[BadRow], count: int) -> None:
        rows = "row is" if count == 1 else "rows are"
        super().__init__(f"{count} {rows} bad; nothing was imported.")
        self.bad_rows = bad_rows
        self.count = count


class ConcurrentChange(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "Another writer created or deleted some of these users or groups during the import; "
            "nothing was imported. Run it again."
        )


@dataclass(frozen=True, slots=True)
class ChangedRecord:
    """An existing user's new record, and the ids of the groups it is in now."""

    record: UserRecordIn
    groups: set[int]


@dataclass(frozen=True)
class ImportResult:
    rows: int
    created: int
    replaced: int
    unchanged: int
    groups_created: list[str]


async def import_users(
    session: AsyncSession,
    *,
    actor: Actor,
    rows: Iterable[ImportRow],
    create_groups: bool = False,
    replace: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    report_limit: int = DEFAULT_REPORT_LIMIT,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Store every row, or none of them and say which rows are bad.

    Rows are read as they come, `batch_size` at a time, each batch written with
    a few statements inside the one transaction. Not retried: the rows are read
    once.
    """
    run = _Import(session, actor, create_groups=create_groups, replace=replace, limit=report_limit)
    try:
        async with session.begin():
            prepared = await bulk_repo.prepare(session)
            try:
                run.boundary = await bulk_repo.last_user_id(session)
                async with contextlib.aclosing(_batches(rows, batch_size)) as batches:
                    async for batch in batches:
                        await run.add(batch)
                        if progress is not None:
                            progress(len(batch))
            finally:
                await bulk_repo.finish(session, prepared=prepared)
            if run.bad_count:
                raise ImportRefused(run.bad_rows, run.bad_count)
            result = run.result()
            # Their member lists changed: their versions, and so their ETags, do.
            created_ids = set(run.created_groups.values())
            await group_repo.bump(session, ids=sorted(run.touched - created_ids))
            if result.created + result.replaced >= _ANALYZE_AFTER:
                await bulk_repo.analyze(session)
            after: dict[str, object] = {
                "users": result.created + result.replaced,
                "groups_created": result.groups_created,
            }
            if replace:
                after |= {"replaced": result.replaced, "unchanged": result.unchanged}
            await audit(session, actor=actor, action="bulk.import", resource="users", after=after)
    except IntegrityError as exc:
        raise ConcurrentChange() from exc
    except DBAPIError as exc:
        if _busy(exc):
            raise Busy() from exc
        raise
    return result


async def _batches(rows: Iterable[ImportRow], size: int) -> AsyncGenerator[list[ImportRow]]:
    """The rows, `size` at a time; the next batch is read while this one is written.

    Reading and checking rows is Python work; writing them is mostly the
    database's, which leaves the interpreter free meanwhile.
    """
    source = iter(rows)

    def read() -> list[ImportRow]:
        return list(itertools.islice(source, size))

    upcoming = asyncio.ensure_future(asyncio.to_thread(read))
    try:
        while batch := await upcoming:
            upcoming = asyncio.ensure_future(asyncio.to_thread(read))
            yield batch
    finally:
        # Never leave the reader running on a file the caller is about to close.
        await asyncio.gather(upcoming, return_exceptions=True)


def _busy(exc: DBAPIError) -> bool:
    if getattr(exc.orig, "sqlstate", None) in _ABORTED_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


@dataclass
class _Import:
    """What an import has learnt so far, batch after batch."""

    session: AsyncSession
    actor: Actor
    create_groups: bool
    replace: bool
    limit: int
    # Users with an id above this were created by this import.
    boundary: int = 0
    group_ids: dict[str, int] = field(default_factory=dict)
    unknown_groups: set[str] = field(default_factory=set)
    created_groups: dict[str, int] = field(default_factory=dict)
    # Groups whose member lists change.
    touched: set[int] = field(default_factory=set)
    # Existing users replaced so far (only these are remembered: a new user
    # is known by its id above `boundary`).
    replaced: set[str] = field(default_factory=set)
    rows: int = 0
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    bad_count: int = 0
    # Bad rows of the batch at hand, found check after check.
    refused: list[BadRow] = field(default_factory=list)

    def refuse(self, row: ImportRow, reason: Reason, message: str) -> None:
        self.bad_count += 1
        self.refused.append(BadRow(row.line, row.userid, reason, message))

    def _report(self) -> None:
        """Keep the batch's bad rows in file order, up to the limit."""
        self.refused.sort(key=lambda bad: bad.line)
        self.bad_rows += self.refused[: max(self.limit - len(self.bad_rows), 0)]
        self.refused.clear()

    def result(self) -> ImportResult:
        return ImportResult(
            self.rows, self.created, self.changed, self.unchanged, sorted(self.created_groups)
        )

    async def add(self, batch: list[ImportRow]) -> None:
        self.rows += len(batch)
        records = self._valid(batch)
        await self._resolve_groups(records)
        known = []
        for row, userid, record in records:
            unknown = [name for name in record.groups if name in self.unknown_groups]
            if unknown:
                problems = UnknownGroups(unknown, record.groups).problems
                message = "; ".join(f"{p.field}: {p.message}" for p in problems)
                self.refuse(row, Reason.unknown_groups, message)
            else:
                known.append((row, userid, record))
        existing = await user_repo.find_many(
            self.session, userids=[userid for _, userid, _ in known]
        )
        new: list[tuple[str, UserRecordIn]] = []
        replacing: list[tuple[int, str, UserRecordIn]] = []
        for row, userid, record in known:
            user_id = existing.get(userid)
            if user_id is None:
                new.append((userid, record))
            elif user_id > self.boundary or userid in self.replaced:
                self.refuse(row, Reason.duplicate, _listed_twice(userid))
            elif not self.replace:
                self.refuse(row, Reason.exists, f"user {userid!r} already exists")
            else:
                self.replaced.add(userid)
                replacing.append((user_id, userid, record))
        group_ids = self.group_ids
        pairs = [(group_ids[name], userid) for userid, r in new for name in r.groups]
        # New groups are this transaction's own: no other writer can reach them.
        created = set(self.created_groups.values())
        # A first look at the replaced users' groups decides which groups to
        # lock before the users (the lock order); what the users are in is
        # read again once they are locked: a membership committed between
        # the look and the lock must go, and be announced, too.
        first = await self._first_look(replacing)
        planned = {group_id for group_id, _ in pairs} | first
        replaced_ids = [user_id for user_id, _, _ in replacing]
        await lock_in_order(self.session, groups=planned - created, users=replaced_ids)
        changed = await self._changed(replacing)
        changed_ids = [user_id for user_id, _, _ in changed]
        touched = {group_id for group_id, _ in pairs} | self._touched_by(changed)
        await lock_late(self.session, groups=touched - created, locked=planned)
        self.touched |= touched
        await bulk_repo.insert_users(
            self.session, users=[(userid, r.first_name, r.last_name) for userid, r in new]
        )
        self.created += len(new)
        for userid, record in new:
            groups = sorted(record.groups)
            data = {
                "first_name": record.first_name,
                "last_name": record.last_name,
                "userid": userid,
                "groups": groups,
            }
            events.emit(self.session, actor=self.actor, type="user.created", data=data)
            pairs_of_user = [(name, userid) for name in groups]
            events.memberships(self.session, actor=self.actor, added=True, pairs=pairs_of_user)
        await bulk_repo.replace_users(
            self.session,
            users=[(i, c.record.first_name, c.record.last_name) for i, _, c in changed],
        )
        await bulk_repo.remove_memberships(self.session, user_ids=changed_ids)
        self.changed += len(changed)
        pairs += [(group_ids[g], userid) for _, userid, c in changed for g in c.record.groups]
        await bulk_repo.add_memberships(self.session, pairs=pairs)
        self._report()

    def _valid(self, batch: list[ImportRow]) -> list[tuple[ImportRow, str, UserRecordIn]]:
        """The rows that are valid records with a userid not seen in this batch."""
        valid = []
        seen: set[str] = set()
        for row in batch:
            record = row.record
            userid = record.userid if record is not None else None
            if record is None or userid is None:
                message = row.problem or "userid: is required in an import"
                self.refuse(row, Reason.invalid, message)
            elif userid in seen:
                self.refuse(row, Reason.duplicate, _listed_twice(userid))
            else:
                seen.add(userid)
                valid.append((row, userid, record))
        return valid

    async def _resolve_groups(self, records: list[tuple[ImportRow, str, UserRecordIn]]) -> None:
        named = {name for _, _, record in records for name in record.groups}
        names = sorted(named - self.group_ids.keys() - self.unknown_groups)
        if not names:
            return
        found = await group_repo.find_many(self.session, names=names)
        self.group_ids |= found
        missing = [name for name in names if name not in found]
        if missing and self.create_groups:
            created = await bulk_repo.insert_groups(self.session, names=missing)
            self.group_ids |= created
            self.created_groups |= created
            for name in sorted(created):
                events.emit(
                    self.session, actor=self.actor, type="group.created", data={"name": name}
                )
        else:
            self.unknown_groups.update(missing)

    async def _changed(
        self, replacing: list[tuple[int, str, UserRecordIn]]
    ) -> list[tuple[int, str, ChangedRecord]]:
        """The existing users whose records the import changes (as PUT would), with
        the groups they are in now; an unchanged record keeps its version (and ETag)."""
        if not replacing:
            return []
        current = await bulk_repo.current(
            self.session, ids=[user_id for user_id, _, _ in replacing]
        )
        changed: list[tuple[int, str, ChangedRecord]] = []
        if len(current) < len(replacing):
            # Deleted by another writer since this import found it.
            raise ConcurrentChange()
        for user_id, userid, record in replacing:
            first, last, groups, active = current[user_id]
            if (first, last) == (record.first_name, record.last_name) and sorted(groups) == sorted(
                record.groups
            ):
                self.unchanged += 1
            else:
                changed.append((user_id, userid, ChangedRecord(record, set(groups.values()))))
                self._emit_replaced(userid, (first, last, sorted(groups)), record, active=active)
        return changed

    async def _first_look(self, replacing: list[tuple[int, str, UserRecordIn]]) -> set[int]:
        """The groups the replacements would change, as the memberships are now, unlocked."""
        now = await bulk_repo.groups_to_lock(
            self.session, ids=[user_id for user_id, _, _ in replacing]
        )
        groups: set[int] = set()
        for user_id, _, record in replacing:
            # A user deleted meanwhile is found missing once locked (_changed).
            groups |= now.get(user_id, set()) ^ {self.group_ids[name] for name in record.groups}
        return groups

    def _touched_by(self, changed: list[tuple[int, str, ChangedRecord]]) -> set[int]:
        """The groups whose member lists these changes change."""
        touched: set[int] = set()
        for _, _, change in changed:
            touched |= change.groups ^ {self.group_ids[g] for g in change.record.groups}
        return touched

    def _emit_replaced(
        self,
        userid: str,
        before: tuple[str, str, list[str]],
        record: UserRecordIn,
        *,
        active: bool,
    ) -> None:
        """As a PUT of the record: the membership changes, then user.updated for new names.

        As a PUT, the record in user.updated shows no groups while the user is inactive.
        """
        first, last, groups = before
        was, now = set(groups), set(record.groups)
        removed = [(g, userid) for g in sorted(was - now)]
        events.memberships(self.session, actor=self.actor, added=False, pairs=removed)
        added = [(g, userid) for g in sorted(now - was)]
        events.memberships(self.session, actor=self.actor, added=True, pairs=added)
        changed = [
            field
            for field, old, new in (
                ("first_name", first, record.first_name),
                ("last_name", last, record.last_name),
            )
            if old != new
        ]
        if changed:
            data = {
                "first_name": record.first_name,
                "last_name": record.last_name,
                "userid": userid,
                "groups": sorted(record.groups) if active else [],
                "changed": changed,
            }
            events.emit(self.session, actor=self.actor, type="user.updated", data=data)


def _listed_twice(userid: str) -> str:
    return f"userid {userid!r} is listed earlier in this file"


ExportedUser = tuple[str, str, str, list[str]]


class ExportSink(Protocol):
    """Where exported records go, a batch at a time."""

    def start(self, total: int) -> None: ...

    def write(self, users: Sequence[ExportedUser]) -> None: ...


async def export_users(
    session: AsyncSession, *, sink: ExportSink, batch_size: int = DEFAULT_BATCH_SIZE
) -> int:
    """Send every user, in userid order with sorted groups, to the sink; how many were sent.

    One read transaction: the export is one consistent snapshot. A batch is
    written (in a thread) while the database reads the next one.
    """
    sent = 0
    async with session.begin():
        sink.start(await bulk_repo.count_users(session))
        writing: asyncio.Future[None] | None = None
        try:
            async for users in bulk_repo.stream_users(session, batch_size=batch_size):
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(asyncio.to_thread(sink.write, users))
                sent += len(users)
        finally:
            if writing is not None:
                await writing
    return sent
