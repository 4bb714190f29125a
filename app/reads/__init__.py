"""The read side: the queries that answer GET requests, fenced off from the writes.

The write side (app.service over app.repository) runs each use case in one
transaction that the service opens with `session.begin()` and the
repository's functions run inside. The reads here follow another contract,
because they are the hot path of a directory and every hop counts:

- **Each function owns its transaction.** It is one statement, atomic by
  itself, so the caller passes a reader session (app.db.Database.reader or,
  for point lookups, Database.statement_reader) and never opens a
  transaction around it. On SQLite a point lookup runs on the fast reader
  (app.reads.fast: the event loop's own thread, autocommit, no session
  transaction at all), on PostgreSQL on the prepared reader
  (app.reads.prepared: asyncpg's prepared statements on a pool of its own,
  autocommit, no session); every other read runs in a transaction of its
  own (on PostgreSQL in autocommit, which saves the BEGIN and COMMIT round
  trips).
- **Only indexed point lookups take the fast path.** A read that can scan
  (a page, a search) always goes through the driver's thread, so that the
  event loop keeps serving while it runs (app.reads.statement.SingleRead's
  `point` flag). A point lookup that turns out large (a huge group's
  members) is stopped on the loop after a few milliseconds and run on the
  driver's thread instead (app.reads.fast.TooLongForTheLoop).
- **What comes back are plain values**, the same whichever path ran the
  statement: JSON text built by the database for records and member lists
  (app.reads.records: the shape of app.schemas.UserRecord, pinned to it),
  tuples of Python values, or the frozen rows of app.repository.common.
  Column types are converted as SQLAlchemy would (a DateTime is a
  datetime), so no caller ever sees a raw driver value.

Modules: `fast` (the SQLite fast reader), `prepared` (the PostgreSQL
point reader), `statement` (SingleRead: one
statement compiled once per dialect, and how it runs), `records` (JSON
built in SQL), and the reads themselves: `users`, `groups`, `tokens`.
"""
